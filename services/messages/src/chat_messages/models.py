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
    false,
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
    # Channels: the name folded for comparison (rules.name_key); unique among all channels.
    Column("name_key", String(255), nullable=True),
    Column("topic", String(250), nullable=False, default="", server_default=""),
    Column("description", String(1000), nullable=False, default="", server_default=""),
    # Archived: read-only for everyone (reading, history and leaving stay allowed).
    Column("archived", Boolean, nullable=False, default=False, server_default=false()),
    Index("uq_conversations_name_key", "name_key", unique=True),
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
    # Hidden from the member's list at this last_seq (privacy.py): shown again by the next event.
    Column("hidden_seq", Integer, nullable=True),
    Index("ix_members_user", "user_id"),
)

# user_id blocked blocked_id (privacy.py).
user_blocks = Table(
    "user_blocks",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("blocked_id", String(64), primary_key=True),
    Column("created_at", String(32), nullable=False),
    Index("ix_user_blocks_blocked", "blocked_id"),
)

# Per-user privacy settings; no row: the defaults.
user_settings = Table(
    "user_settings",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("group_invites", String(16), nullable=False, default="everyone"),
)

events = Table(
    "events",
    metadata,
    Column("conv_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
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
    # conversation_updated: the changed fields ({name?, topic?, description?, archived?}).
    Column("changes", JSON, nullable=True),
    # Idempotency of sends: a redelivered or resent command finds the first event.
    UniqueConstraint("conv_id", "sender", "client_msg_id", name="uq_events_send_key"),
    # Edits and deletes of a message (``target``): finding them when it is deleted.
    Index("ix_events_target", "conv_id", "target"),
)
