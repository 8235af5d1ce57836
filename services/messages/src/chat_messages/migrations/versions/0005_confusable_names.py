"""channels: name_key compares names alike to the eye (rules.skeleton), not only by case

Revision ID: 0005
Revises: 0004

Existing channels get the new key; where two names now collide ("general", and "general"
spelt with a Cyrillic "e"), the later channel (by created_at, id) is renamed "<name> (2)", "(3)", …
so the unique index holds. Uses the service's own rules (their data comes from the
``confusables`` package).
"""

import sqlalchemy as sa
from alembic import op
from chat_messages.rules import _fold, name_key

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    conv = sa.table(
        "conversations",
        sa.column("id"),
        sa.column("kind"),
        sa.column("name"),
        sa.column("name_key"),
        sa.column("created_at"),
    )
    rows = conn.execute(
        sa.select(conv.c.id, conv.c.name).where(conv.c.kind == "channel").order_by(conv.c.created_at, conv.c.id)
    ).all()
    op.drop_index("uq_conversations_name_key", "conversations")
    seen: set[str] = set()
    for row in rows:
        name = _fold(row.name or "") or "channel"
        candidate, n = name, 1
        while name_key(candidate) in seen:
            n += 1
            suffix = f" ({n})"
            candidate = name[: 80 - len(suffix)] + suffix
        seen.add(name_key(candidate))
        conn.execute(sa.update(conv).where(conv.c.id == row.id).values(name=candidate, name_key=name_key(candidate)))
    op.create_index("uq_conversations_name_key", "conversations", ["name_key"], unique=True)


def downgrade() -> None:
    pass  # the skeleton keys are also valid (stricter) keys for the older code
