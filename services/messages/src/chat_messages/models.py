"""Tables owned by the messages service."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(80), nullable=True),
    Column("private", Boolean, nullable=False, default=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    # The seq of the newest event; the next event gets last_seq + 1.
    Column("last_seq", Integer, nullable=False, default=0),
    # "<user_a>:<user_b>" (sorted) for dms: one dm per pair.
    Column("dm_key", String(140), nullable=True, unique=True),
)

members = Table(
    "members",
    metadata,
    Column("conv_id", String(64), ForeignKey("conversations.id"), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("joined_at", String(32), nullable=False),
    Column("delivered_seq", Integer, nullable=False, default=0),
    Column("read_seq", Integer, nullable=False, default=0),
    Index("ix_members_user", "user_id"),
)

events = Table(
    "events",
    metadata,
    Column("conv_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("sender", String(64), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("client_msg_id", String(64), nullable=True),
    Column("body", Text, nullable=True),
    Column("attachments", JSON, nullable=True),
    Column("reply_to", Integer, nullable=True),
    Column("target", Integer, nullable=True),
    Column("user_id", String(64), nullable=True),
    Column("role", String(16), nullable=True),
    Column("deleted", Boolean, nullable=False, default=False),
    # Idempotency of sends: a redelivered or resent command finds the first event.
    UniqueConstraint("conv_id", "sender", "client_msg_id", name="uq_events_send_key"),
)
