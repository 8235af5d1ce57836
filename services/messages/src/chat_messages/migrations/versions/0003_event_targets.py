"""events: index on (conv_id, target) for edits and deletes

Revision ID: 0003
Revises: 0002

Deleting a message erases the text of every edit targeting it and a repeated delete finds
the first ``delete`` event; both look events up by (conv_id, target).
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_target", "events", ["conv_id", "target"])


def downgrade() -> None:
    op.drop_index("ix_events_target", table_name="events")
