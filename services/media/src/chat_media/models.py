"""Tables owned by the media service."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, MetaData, String, Table

metadata = MetaData()

# One upload, sanitized and stored (``key``; its thumbnail at ``key + ".thumb"``).
# ``orphaned_at``: since when no live message references it (set at upload; cleared by the
# first reference; set again when the last referencing message is deleted). Collected
# ``MEDIA_GC_AFTER_S`` after it. ``referenced``: some message referenced it once (then, with
# no live reference left, nobody may fetch it any more, the uploader included).
media = Table(
    "media",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("key", String(200), nullable=False),
    Column("mime", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("name", String(200), nullable=False),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("frames", Integer, nullable=False, default=1),
    Column("thumb_mime", String(50), nullable=True),
    Column("thumb_size", BigInteger, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("orphaned_at", Float, nullable=True),
    Column("referenced", Boolean, nullable=False, default=False),
    Index("media_owner", "owner"),
    Index("media_orphaned", "orphaned_at"),
)

# Live references: message (conv, seq) attaches media_id. Learned from the event stream.
refs = Table(
    "media_refs",
    metadata,
    Column("media_id", String(64), primary_key=True),
    Column("conv", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Index("media_refs_message", "conv", "seq"),
)
