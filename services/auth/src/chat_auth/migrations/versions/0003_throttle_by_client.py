"""login throttle keyed by (username, client address): an attacker elsewhere cannot lock the
owner out. The table holds only short-lived counters; it is recreated (current lockouts end).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _table(*key: str) -> None:
    cols: list[sa.Column[Any]] = [
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_until", TS, nullable=True),
    ]
    if "client" in key:
        cols.insert(1, sa.Column("client", sa.String(64), nullable=False))
    op.create_table("login_throttle", *cols, sa.PrimaryKeyConstraint(*key, name="pk_login_throttle"))


def upgrade() -> None:
    op.drop_table("login_throttle")
    _table("username", "client")


def downgrade() -> None:
    op.drop_table("login_throttle")
    _table("username")
