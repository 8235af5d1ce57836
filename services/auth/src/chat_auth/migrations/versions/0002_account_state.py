"""account state: admin bootstrap row, users.tokens_revoked_at, byte-order username index

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "admin_bootstrap",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_bootstrap"),
    )
    # A database that already has users has had its first user: nobody else becomes admin
    # by registering.
    op.execute(
        "INSERT INTO admin_bootstrap (id, user_id, created_at) "
        "SELECT 1, id, created_at FROM users ORDER BY created_at, id LIMIT 1"
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("tokens_revoked_at", TS, nullable=True))
    op.execute("UPDATE users SET tokens_revoked_at = deactivated_at WHERE deactivated_at IS NOT NULL")
    op.create_index("ix_users_tokens_revoked_at", "users", ["tokens_revoked_at"])
    if op.get_bind().dialect.name == "postgresql":
        # The directory's prefix range query compares in byte order (COLLATE "C") whatever
        # the database's collation; SQLite's unique index on username already is byte order.
        op.execute('CREATE INDEX ix_users_username_c ON users (username COLLATE "C")')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_users_username_c")
    op.drop_index("ix_users_tokens_revoked_at", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("tokens_revoked_at")
    op.drop_table("admin_bootstrap")
