"""channels: name_key (unique), topic, description, archived; events.changes

Revision ID: 0002
Revises: 0001

Existing channels get their name_key; where two names already collide, the later channel
(by created_at, id) is renamed "<name> (2)", "(3)", … so the unique index can be built.
"""

import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _fold(text: str) -> str:  # frozen copy of chat_messages.rules._fold / name_key
    spaced = " ".join(unicodedata.normalize("NFC", text).split())
    return " ".join(_CONTROL.sub("", spaced).split())


def _key(name: str) -> str:
    return unicodedata.normalize("NFC", _fold(name).casefold())


def upgrade() -> None:
    with op.batch_alter_table("conversations") as b:
        b.add_column(sa.Column("name_key", sa.String(255), nullable=True))
        b.add_column(sa.Column("topic", sa.String(250), nullable=False, server_default=""))
        b.add_column(sa.Column("description", sa.String(1000), nullable=False, server_default=""))
        b.add_column(sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false()))
    _backfill_name_keys()
    op.create_index("uq_conversations_name_key", "conversations", ["name_key"], unique=True)
    op.add_column("events", sa.Column("changes", sa.JSON, nullable=True))
    if op.get_bind().dialect.name != "sqlite":  # SQLite does not enforce VARCHAR lengths
        op.alter_column("events", "kind", type_=sa.String(32), existing_nullable=False)


def _backfill_name_keys() -> None:
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
    seen: set[str] = set()
    for row in rows:
        name = _fold(row.name or "") or "channel"
        candidate, n = name, 1
        while _key(candidate) in seen:
            n += 1
            suffix = f" ({n})"
            candidate = name[: 80 - len(suffix)] + suffix
        seen.add(_key(candidate))
        conn.execute(sa.update(conv).where(conv.c.id == row.id).values(name=candidate, name_key=_key(candidate)))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("events", "kind", type_=sa.String(16), existing_nullable=False)
    with op.batch_alter_table("events") as b:
        b.drop_column("changes")
    op.drop_index("uq_conversations_name_key", "conversations")
    with op.batch_alter_table("conversations") as b:
        b.drop_column("archived")
        b.drop_column("description")
        b.drop_column("topic")
        b.drop_column("name_key")
