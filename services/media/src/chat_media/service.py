"""The media service's rules: upload (rate, quota, a bounded decoding queue and pixel
budget, sanitize, store), who may fetch what, resolving a send's attachments, learning
references from the event stream, and collecting what nothing references.

Who may fetch an upload: its uploader, until a message that referenced it is deleted and no
other live message references it; and whoever may read a conversation with a live message
referencing it (members; anyone signed in for a public channel — the messages service
answers ``internal.readable``). Everyone else gets ``not_found``, whether or not it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chat_bus.rpc import RpcClient
from chat_common.ratelimit import Rule, TokenBucket
from chat_proto import ops
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import Readable
from prometheus_client import Counter, Gauge, Histogram

from chat_media import sanitize
from chat_media.settings import MediaSettings
from chat_media.storage import NotStored, Storage, media_key
from chat_media.store import MediaStore

log = logging.getLogger("chat.media")

UPLOADS = Counter("chat_media_uploads_total", "Uploads by outcome", ["outcome"])
UPLOAD_BYTES = Counter("chat_media_upload_bytes_total", "Bytes stored (sanitized files and thumbnails)")
SANITIZE = Histogram(
    "chat_media_sanitize_seconds",
    "Sanitizing one upload (decode, re-encode, thumbnail)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WAITING = Gauge("chat_media_uploads_in_work", "Uploads waiting for or in a decoding worker")
COLLECTED = Counter("chat_media_collected_total", "Uploads deleted from storage (nothing referenced them)")
NOT_FOUND = "no such media"


@dataclass(frozen=True)
class Download:
    mime: str
    name: str
    size: int
    chunks: AsyncIterator[bytes]


class PixelBudget:
    """Pixels being decoded at once, all workers together, at most ``total`` (one image at the
    cap decodes alone): memory stays bounded whatever the concurrency."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._cond = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        n = max(0, min(pixels, self.total))
        async with self._cond:
            await self._cond.wait_for(lambda: self.free >= n)
            self.free -= n
        try:
            yield
        finally:
            async with self._cond:
                self.free += n
                self._cond.notify_all()


class MediaService:
    def __init__(
        self,
        s: MediaSettings,
        store: MediaStore,
        storage: Storage,
        rpc: RpcClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.s, self.store, self.storage, self.rpc, self.clock = s, store, storage, rpc, clock
        self.limits = sanitize.Limits(
            max_bytes=s.max_bytes,
            max_pixels=s.max_pixels,
            max_frames=s.max_frames,
            allow_mp4=s.allow_mp4,
            thumb_px=s.thumb_px,
            # an animation is held decoded while re-encoded: all its frames within one cap
            max_total_pixels=s.max_pixels,
        )
        self.pool = ThreadPoolExecutor(s.workers, thread_name_prefix="sanitize")
        self.pixels = PixelBudget(s.max_pixels)
        self.in_work = 0
        self._rule = Rule(s.rate_burst, s.rate_per_s)
        self._buckets: dict[str, TokenBucket] = {}

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # --- upload ----------------------------------------------------------------------------
    async def upload(self, user: str, name: str | None, data: bytes) -> dict[str, Any]:
        try:
            row = await self._upload(user, name, data)
        except ChatError as err:
            UPLOADS.labels(str(err.code)).inc()
            raise
        UPLOADS.labels("stored").inc()
        return view(row)

    async def _upload(self, user: str, name: str | None, data: bytes) -> dict[str, Any]:
        if len(data) > self.s.max_bytes:
            raise ChatError(ErrorCode.TOO_LARGE, f"the file is larger than {self.s.max_bytes} bytes")
        self._take_token(user)
        if self.s.quota_bytes and await self.store.bytes_of(user) + len(data) > self.s.quota_bytes:
            raise ChatError(ErrorCode.TOO_LARGE, f"upload quota of {self.s.quota_bytes} bytes used up")
        if self.in_work >= self.s.workers + self.s.queue_max:
            raise ChatError(ErrorCode.UNAVAILABLE, "too many uploads in work; retry", retry_after_ms=1000)
        self.in_work += 1
        WAITING.set(self.in_work)
        try:
            out = await self._sanitize(data)
        finally:
            self.in_work -= 1
            WAITING.set(self.in_work)
        media_id = secrets.token_hex(16)  # 128 bits; hex: never starts with "-" (command lines)
        key = media_key(media_id)
        if out.thumbnail is not None:
            await self.storage.put(key + ".thumb", out.thumbnail, out.thumbnail_mime or "image/jpeg")
        await self.storage.put(key, out.data, out.mime)
        now = self.clock()
        row: dict[str, Any] = {
            "id": media_id,
            "owner": user,
            "key": key,
            "mime": out.mime,
            "size": len(out.data),
            "name": sanitize.safe_name(name, out.mime),
            "width": out.width,
            "height": out.height,
            "frames": out.frames,
            "thumb_mime": out.thumbnail_mime if out.thumbnail is not None else None,
            "thumb_size": len(out.thumbnail) if out.thumbnail is not None else None,
            "created_at": now,
            "orphaned_at": now,  # until a message references it
            "referenced": False,
        }
        await self.store.insert(row)
        UPLOAD_BYTES.inc(row["size"] + (row["thumb_size"] or 0))
        return row

    def _take_token(self, user: str) -> None:
        if not self._rule.enabled:
            return
        now = time.monotonic()
        bucket = self._buckets.get(user)
        if bucket is None:
            if len(self._buckets) > 10_000:  # full buckets are like new ones: forget them
                self._buckets = {u: b for u, b in self._buckets.items() if not b.full(now)}
            bucket = self._buckets[user] = TokenBucket(self._rule, now)
        wait = bucket.try_take(now)
        if wait is not None:
            raise ChatError(
                ErrorCode.RATE_LIMITED, "too many uploads; retry later", retry_after_ms=int(wait * 1000) + 1
            )

    async def _sanitize(self, data: bytes) -> sanitize.Sanitized:
        loop = asyncio.get_running_loop()
        # What decoding will hold: a still's pixels; an animation up to the whole cap (its
        # frames together). Beyond the cap sanitize refuses before decoding: nothing held.
        kind = sanitize.detect(data[:64])
        pixels = sanitize.pixels_of(data) or 0
        if kind in ("image/gif", "image/webp") and pixels <= self.s.max_pixels:
            pixels = self.s.max_pixels
        async with self.pixels.hold(pixels if pixels <= self.s.max_pixels else 0):
            started = time.perf_counter()
            try:
                return await loop.run_in_executor(self.pool, sanitize.sanitize, data, self.limits)
            except sanitize.Refused as r:
                raise ChatError(ErrorCode(r.code), r.message) from None
            finally:
                SANITIZE.observe(time.perf_counter() - started)

    # --- fetch -----------------------------------------------------------------------------
    async def open(self, user: str, media_id: str, thumbnail: bool = False) -> Download:
        row = await self.readable_row(user, media_id)
        if thumbnail and row.thumb_mime is None:
            raise ChatError(ErrorCode.NOT_FOUND, "this media has no thumbnail")
        key = row.key + ".thumb" if thumbnail else row.key
        try:
            chunks = await self.storage.read(key)
        except NotStored:
            log.warning("media row without its object", extra={"media": media_id})
            raise ChatError(ErrorCode.NOT_FOUND, NOT_FOUND) from None
        if thumbnail:
            return Download(row.thumb_mime, row.name, int(row.thumb_size or 0), chunks)
        return Download(row.mime, row.name, int(row.size), chunks)

    async def readable_row(self, user: str, media_id: str) -> Any:
        row = await self.store.get(media_id)
        if row is None:
            raise ChatError(ErrorCode.NOT_FOUND, NOT_FOUND)
        convs = await self.store.ref_convs(media_id)
        if row.referenced and not convs:  # every message that showed it was deleted
            raise ChatError(ErrorCode.NOT_FOUND, NOT_FOUND)
        if row.owner == user:
            return row
        if convs:
            res = await self.rpc.request(ops.messages.READABLE, Readable(user_id=user, convs=convs[:1000]))
            if res.convs:
                return row
        raise ChatError(ErrorCode.NOT_FOUND, NOT_FOUND)

    # --- attachments -----------------------------------------------------------------------
    async def resolve(self, user: str, media_ids: list[str]) -> list[dict[str, Any]]:
        """The attachment objects of ``media_ids`` (in order) for a message ``user`` sends."""
        if len(set(media_ids)) != len(media_ids):
            raise ChatError(ErrorCode.INVALID, "attachments must be unique")
        rows = await self.store.of_owner(user, media_ids)
        out = []
        for mid in media_ids:
            row = rows.get(mid)
            if row is None or (row.referenced and not await self.store.ref_convs(mid)):
                raise ChatError(ErrorCode.NOT_FOUND, f"no upload {mid} of yours")
            out.append(attachment(row))
        return out

    # --- the event stream ------------------------------------------------------------------
    async def on_event(self, ev: dict[str, Any]) -> None:
        kind, conv, seq = ev.get("kind"), ev.get("conv"), ev.get("seq")
        if not isinstance(conv, str) or not isinstance(seq, int):
            return
        if kind == "message" and ev.get("attachments") and not ev.get("deleted"):
            ids = [a["media_id"] for a in ev["attachments"] if isinstance(a, dict) and "media_id" in a]
            await self.store.add_refs(conv, seq, ids)
        elif kind == "delete" and isinstance(ev.get("target"), int):
            await self.store.remove_refs(conv, ev["target"], self.clock())

    # --- collection ------------------------------------------------------------------------
    async def collect(self) -> int:
        """Delete what has been orphaned for ``gc_after_s``; the number deleted."""
        before = self.clock() - self.s.gc_after_s
        n = 0
        for row in await self.store.due(before):
            if not await self.store.forget(row.id, before):
                continue  # referenced again meanwhile
            for key in (row.key, row.key + ".thumb"):
                try:
                    await self.storage.delete(key)
                except Exception as exc:  # the row is gone: the object leaks, say so
                    log.error("media object not deleted", extra={"key": key, "error": repr(exc)})
            n += 1
        COLLECTED.inc(n)
        return n

    async def collect_forever(self) -> None:
        assert self.s.gc_interval_s is not None
        while True:
            await asyncio.sleep(self.s.gc_interval_s)
            try:
                await self.collect()
            except Exception:
                log.exception("media collection failed")


def attachment(row: Any) -> dict[str, Any]:
    """The attachment object stored in a message event (PROTOCOL §5)."""
    out: dict[str, Any] = {"media_id": row.id, "mime": row.mime, "size": int(row.size), "name": row.name}
    if row.width is not None:
        out["width"], out["height"] = int(row.width), int(row.height)
    return out


def view(row: dict[str, Any]) -> dict[str, Any]:
    """What an upload answers (the gateway adds ``url`` and ``thumbnail_url``)."""
    out = {"media_id": row["id"], "mime": row["mime"], "size": row["size"], "name": row["name"]}
    if row["width"] is not None:
        out["width"], out["height"] = row["width"], row["height"]
    out["thumbnail"] = row["thumb_mime"] is not None
    return out
