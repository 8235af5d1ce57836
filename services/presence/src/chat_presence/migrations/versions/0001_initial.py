"""presence_last_seen

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
        "presence_last_seen",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("last_seen", sa.String(32), nullable=False),
        sa.Column("online", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("presence_last_seen")
