"""Tables owned by the presence service."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, MetaData, String, Table

metadata = MetaData()

# The durable part of presence: when each user was last seen, and whether the replica that
# wrote it considered them online then (a fresh replica offlines users still marked online
# whom no gateway lists after its warm-up).
last_seen = Table(
    "presence_last_seen",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("last_seen", String(32), nullable=False),
    Column("online", Boolean, nullable=False),
)
