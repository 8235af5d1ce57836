"""media, media_refs

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("mime", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("thumb_mime", sa.String(50), nullable=True),
        sa.Column("thumb_size", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("orphaned_at", sa.Float, nullable=True),
        sa.Column("referenced", sa.Boolean, nullable=False),
    )
    op.create_index("media_owner", "media", ["owner"])
    op.create_index("media_orphaned", "media", ["orphaned_at"])
    op.create_table(
        "media_refs",
        sa.Column("media_id", sa.String(64), primary_key=True),
        sa.Column("conv", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
    )
    op.create_index("media_refs_message", "media_refs", ["conv", "seq"])


def downgrade() -> None:
    op.drop_table("media_refs")
    op.drop_table("media")
