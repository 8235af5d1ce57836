"""conversations, members, events

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
        "conversations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(80), nullable=True),
        sa.Column("private", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("dm_key", sa.String(140), nullable=True, unique=True),
    )
    op.create_table(
        "members",
        sa.Column("conv_id", sa.String(64), sa.ForeignKey("conversations.id"), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("joined_at", sa.String(32), nullable=False),
        sa.Column("delivered_seq", sa.Integer, nullable=False),
        sa.Column("read_seq", sa.Integer, nullable=False),
    )
    op.create_index("ix_members_user", "members", ["user_id"])
    op.create_table(
        "events",
        sa.Column("conv_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("client_msg_id", sa.String(64), nullable=True),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("attachments", sa.JSON, nullable=True),
        sa.Column("reply_to", sa.Integer, nullable=True),
        sa.Column("target", sa.Integer, nullable=True),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.UniqueConstraint("conv_id", "sender", "client_msg_id", name="uq_events_send_key"),
    )


def downgrade() -> None:
    op.drop_table("events")
    op.drop_index("ix_members_user", "members")
    op.drop_table("members")
    op.drop_table("conversations")
