"""One client connection: its bounded outbound queue, writer task and per-conversation state.

Live frames (events, later receipts/typing/presence) count against the queue bound;
when an event does not fit, nothing more is queued and close 4009 is written behind
what is queued. Events held back during a ``sync`` replay count against the same bound
(all conversations together). Replies to the client's own frames never cause 4009: the
reader waits for room instead (it stops reading from a client whose replies it cannot write).

Fast path (a transport with a ``FrameSink``, ``wire.py``): a live frame for a connection
with nothing queued ahead of it is not queued at all. It joins the connection's batch,
and once per event-loop iteration every connection with a batch writes it in one socket
write (several frames when several events came in that iteration; still one JSON object
per WebSocket frame). No task wakes and nothing is awaited per frame. Only when the
socket cannot take more (its buffer is above the high-water mark: a slow reader) or the
connection has something queued do frames go to the queue and the writer task, which
waits for the socket and then writes what is queued, several frames per write. Batched
frames count against the same bound until written.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import deque
from typing import Any

from chat_proto.frames import CLOSE_SLOW_CONSUMER, CLOSE_TOKEN_EXPIRED
from prometheus_client import Counter, Gauge

from chat_gateway.light import Flag
from chat_gateway.ports import Transport
from chat_gateway.wire import FrameSink, OutFrame, out_frame

log = logging.getLogger("chat.gateway.conn")

CONNECTIONS = Gauge("chat_gateway_connections", "Authenticated WebSocket connections")
FRAMES_OUT = Counter("chat_gateway_frames_out_total", "Frames written to clients", ["kind"])
SLOW_CLOSES = Counter("chat_gateway_slow_consumer_closes_total", "Connections closed with 4009")

# The writer joins queued frames into one socket write up to this many bytes.
COALESCE_BYTES = 64 * 1024


class Connection:
    # One per connection, most of them idle: attributes in slots, no instance dict.
    __slots__ = (
        "_batch",
        "_batch_bytes",
        "_busy",
        "_close",
        "_expiry",
        "_flusher",
        "_held_bytes",
        "_held_n",
        "_holds",
        "_live_bytes",
        "_live_n",
        "_q",
        "_reply_bytes",
        "_room",
        "_wake",
        "closed",
        "convs",
        "floor",
        "held",
        "id",
        "issued_at",
        "last",
        "max_bytes",
        "max_frames",
        "presence_seen",
        "replayed",
        "sink",
        "user",
        "ws",
    )

    def __init__(self, ws: Transport, max_frames: int, max_bytes: int, sink: FrameSink | None = None) -> None:
        self.ws = ws
        # the same socket taking prepared frames synchronously (fast path), if it can
        self.sink = sink
        self.id = uuid.uuid4().hex
        self.user: str = ""
        # iat of the access token this connection is authenticated with (revocations compare it)
        self.issued_at: float = 0.0
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        # what the writer task writes, in order (None until first used: most connections
        # never queue anything)
        self._q: deque[tuple[OutFrame, bool]] | None = None
        # live frames to write at the end of this loop iteration (nothing queued ahead)
        self._batch: list[OutFrame] = []
        self._batch_bytes = 0
        # the writer holds frames taken from the queue that are not written yet
        self._busy = False
        self._flusher: _Flusher | None = None  # this loop's (found on the first batch)
        self._live_n = 0
        self._live_bytes = 0
        # events held back by sync replays, all conversations (they count as live)
        self._held_n = 0
        self._held_bytes = 0
        self._reply_bytes = 0
        # (asyncio's Event allocates its waiters' deque up front: ~0.8 KiB each, per connection)
        self._wake = Flag()
        self._room = Flag()
        self._room.set()
        self._close: tuple[int, str] | None = None
        self.closed = Flag()
        # conv -> last seq written (or queued) on this connection
        self.last: dict[str, int] = {}
        # conv -> the conversation's last seq when this connection started receiving it live;
        # events up to it are history (sync), events after it came or come live.
        self.floor: dict[str, int] = {}
        # conversations being replayed by sync: live events held back until the replay is out
        self.held: dict[str, list[tuple[int, str | OutFrame]]] = {}
        self._holds: dict[str, int] = {}
        # conv -> highest seq sent by a sync replay
        self.replayed: dict[str, int] = {}
        self.convs: set[str] = set()
        # user -> the status of the last presence frame queued here (presence_relay.py)
        self.presence_seen: dict[str, str] = {}
        self._expiry: asyncio.TimerHandle | None = None

    # --- queueing ------------------------------------------------------------------------
    def push_event(self, conv: str, seq: int, frame: str | OutFrame) -> None:
        held = self.held.get(conv)
        if held is not None:
            if self._close is not None:
                return
            size = len(frame)
            if (
                self._live_n + self._held_n + 1 > self.max_frames
                or self._live_bytes + self._held_bytes + size > self.max_bytes
            ):
                SLOW_CLOSES.inc()
                self.close_after_queue(CLOSE_SLOW_CONSUMER, "slow consumer")
                return
            held.append((seq, frame))
            self._held_n += 1
            self._held_bytes += size
            return
        last = self.last
        if seq <= last.get(conv, 0):
            return  # at most once, in increasing order
        last[conv] = seq
        self.push_live(frame)

    def push_live(self, frame: str | OutFrame, droppable: bool = False) -> None:
        # The fanout's per-recipient path: keep it to a few attribute reads and one append.
        if self._close is not None:
            return
        if type(frame) is not OutFrame:
            frame = OutFrame(frame)  # type: ignore[arg-type]
        size = frame.size
        n, nbytes = self._live_n + 1, self._live_bytes + size
        if n + self._held_n > self.max_frames or nbytes + self._held_bytes > self.max_bytes:
            if droppable:
                return
            SLOW_CLOSES.inc()
            self.close_after_queue(CLOSE_SLOW_CONSUMER, "slow consumer")
            return
        self._live_n, self._live_bytes = n, nbytes
        if self.sink is not None and not self._q and not self._busy:
            batch = self._batch
            if not batch:
                (self._flusher or self._find_flusher()).add(self)
            batch.append(frame)
            self._batch_bytes += size
            return
        self._queue().append((frame, True))
        self._wake.set()

    async def push_reply(self, frame: str | OutFrame) -> None:
        while self._reply_bytes > self.max_bytes and self._close is None and not self.closed.is_set():
            self._room.clear()
            await self._room.wait()
        self._reply_bytes += len(frame)
        self._queue().append((out_frame(frame), False))
        self._wake.set()

    def flush(self) -> None:
        """Write this iteration's batch in one socket write; when the socket cannot take
        it now, the batch goes to the front of the queue (it is older than anything there)
        and the writer waits for the socket."""
        batch = self._batch
        if not batch:
            return
        self._batch = []
        n, size = len(batch), self._batch_bytes
        self._batch_bytes = 0
        sink = self.sink
        if sink is not None and sink.ready():
            self._live_n -= n
            self._live_bytes -= size
            sink.write(batch[0].wire if n == 1 else b"".join([f.wire for f in batch]))
            return
        self._queue().extendleft([(f, True) for f in reversed(batch)])
        self._wake.set()

    def start_live(self, conv: str, after: int) -> None:
        self.convs.add(conv)
        self.floor[conv] = after
        self.last[conv] = max(after, self.last.get(conv, 0))

    def stop_live(self, conv: str) -> None:
        self.convs.discard(conv)
        self.last.pop(conv, None)
        self.floor.pop(conv, None)
        self.replayed.pop(conv, None)

    def replayable(self, conv: str, seq: int) -> bool:
        """Called as a sync replay frame is queued: skips what this connection already
        received, live or by an earlier replay (at most once per connection)."""
        if seq <= self.replayed.get(conv, 0):
            return False
        if seq <= self.floor.get(conv, 0) or seq > self.last.get(conv, 0):
            self.replayed[conv] = seq
            return True
        return False

    def begin_replay(self, conv: str) -> None:
        """Hold live events of ``conv`` until the matching ``end_replay`` (syncs may overlap:
        the events are released when the last of them ends)."""
        self._holds[conv] = self._holds.get(conv, 0) + 1
        self.held.setdefault(conv, [])

    def end_replay(self, conv: str, replayed_to: int) -> None:
        """Called once the replay frames are queued: release held live events after them."""
        # Also for a conversation not live here yet (joined over REST a moment ago): when it
        # starts, what the replay already sent is not sent again.
        if replayed_to > self.last.get(conv, 0):
            self.last[conv] = replayed_to
        left = self._holds.get(conv, 0) - 1
        if left > 0:
            self._holds[conv] = left
            return
        self._holds.pop(conv, None)
        for seq, frame in self.held.pop(conv, []):
            self._held_n -= 1
            self._held_bytes -= len(frame)
            self.push_event(conv, seq, frame)

    def expire_at(self, exp: float) -> None:
        """Close 4003 when the access token (``exp``, Unix seconds) expires; a later call
        (in-place re-auth) moves the deadline."""
        if self._expiry is not None:
            self._expiry.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, exp - time.time())
        self._expiry = loop.call_later(delay, self.close_after_queue, CLOSE_TOKEN_EXPIRED, "token expired")

    def close_after_queue(self, code: int, reason: str = "") -> None:
        if self._close is None:
            self._close = (code, reason)
            self._wake.set()
            self._room.set()  # a reply waiting for room is queued behind the close

    def close_now(self, code: int, reason: str = "") -> None:
        """Drop what is queued and close (auth failures, policy violations)."""
        if self._q:
            self._q.clear()
        self._batch.clear()
        self._close = (code, reason)
        self._wake.set()
        self._room.set()

    # --- writing -------------------------------------------------------------------------
    async def writer(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while True:
                    if self._batch:
                        self.flush()  # older than the queue: written (or queued) first
                    if not self._q:
                        self._q = None  # all written: the deque goes (~0.8 KiB) until needed
                        break
                    self._busy = True
                    try:
                        if self.sink is not None:
                            await self._write_queued(self.sink)
                        else:
                            await self.ws.send_text(self._take().text)
                    finally:
                        self._busy = False
                if self._close is not None:
                    code, reason = self._close
                    await self.ws.close(code=code, reason=reason)
                    return
        except Exception as exc:
            log.debug("writer ended", extra={"conn": self.id, "error": repr(exc)})
        finally:
            self.closed.set()
            self._room.set()
            if self._expiry is not None:
                self._expiry.cancel()

    def _queue(self) -> deque[tuple[OutFrame, bool]]:
        q = self._q
        if q is None:
            q = self._q = deque()
        return q

    def _find_flusher(self) -> _Flusher:
        loop = asyncio.get_running_loop()
        f = _FLUSHERS.get(loop)
        if f is None:
            f = _FLUSHERS[loop] = _Flusher()
        self._flusher = f
        return f

    def _take(self) -> OutFrame:
        frame, live = self._queue().popleft()
        if live:
            self._live_n -= 1
            self._live_bytes -= len(frame)
        else:
            self._reply_bytes -= len(frame)
            if self._reply_bytes <= self.max_bytes:
                self._room.set()
        return frame

    async def _write_queued(self, sink: FrameSink) -> None:
        """Once the socket can take more: what is queued, up to ``COALESCE_BYTES`` per write.
        The frames count against the bounds until then."""
        await sink.wait_ready()
        if not sink.ready():  # closed meanwhile: as the transport reports it (it raises)
            await self.ws.send_text(self._take().text)
            return
        parts = [self._take().wire]
        total = len(parts[0])
        while self._q and total < COALESCE_BYTES:
            w = self._take().wire
            parts.append(w)
            total += len(w)
        sink.write(parts[0] if len(parts) == 1 else b"".join(parts))

    def info(self) -> dict[str, Any]:
        return {"conn": self.id, "user": self.user, "queued": len(self._q or ()) + len(self._batch)}


class _Flusher:
    """Connections with a batch, flushed together once per event-loop iteration."""

    __slots__ = ("dirty",)

    def __init__(self) -> None:
        self.dirty: list[Connection] = []

    def add(self, conn: Connection) -> None:
        if not self.dirty:
            asyncio.get_running_loop().call_soon(self.run)
        self.dirty.append(conn)

    def run(self) -> None:
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            try:
                conn.flush()
            except Exception as exc:  # one broken socket must not stop the others' writes
                log.debug("flush failed", extra={"conn": conn.id, "error": repr(exc)})


_FLUSHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = weakref.WeakKeyDictionary()
