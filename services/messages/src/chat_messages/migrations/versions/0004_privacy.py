"""privacy: user blocks, per-user settings (who may add you to groups), hiding a conversation

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_blocks",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("blocked_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "blocked_id", name="pk_user_blocks"),
    )
    op.create_index("ix_user_blocks_blocked", "user_blocks", ["blocked_id"])
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("group_invites", sa.String(16), nullable=False, server_default="everyone"),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_settings"),
    )
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("hidden_seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("hidden_seq")
    op.drop_table("user_settings")
    op.drop_index("ix_user_blocks_blocked", table_name="user_blocks")
    op.drop_table("user_blocks")
