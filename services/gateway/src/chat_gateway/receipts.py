"""Receipt coalescing: WebSocket ``delivered``/``read`` frames become one RPC per window.

A client may report a watermark for every event it shows; forwarding each would cost a
round trip and a transaction per frame. Instead the highest ``delivered`` and ``read`` per
(user, conversation) seen within ``window_s`` are kept and sent to the messages service as
ONE batch (``svc.messages.internal.receipts``; chunks of ``max_batch``), which applies them
in one transaction and publishes the ``receipt`` frames. The frames themselves are answered
with nothing (PROTOCOL §4).

One flush runs at a time; reports arriving meanwhile wait for the next window. A flush the
messages service could not take (unavailable) is merged back and retried at the next window:
watermarks are monotonic, so merging with newer reports by ``max`` loses nothing. At most
``max_pending`` (user, conversation) pairs are held; reports for new pairs beyond that are
dropped (counted) until the next flush.
"""

from __future__ import annotations

import asyncio
import logging
import time

from chat_bus.rpc import RpcClient
from chat_proto import ops
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import ReceiptBatch, ReceiptUpdate
from prometheus_client import Counter, Histogram

log = logging.getLogger("chat.gateway.receipts")

REPORTS = Counter(
    "chat_gateway_receipt_reports_total", "delivered/read reports from clients", ["outcome"]
)  # coalesced | dropped
FLUSHES = Counter("chat_gateway_receipt_flushes_total", "Receipt batches sent to messages", ["outcome"])
FLUSH_SIZE = Histogram(
    "chat_gateway_receipt_flush_updates",
    "(user, conversation) updates per receipt batch",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000),
)

Key = tuple[str, str]  # (user, conv)
Marks = tuple[int | None, int | None]  # (delivered, read); None: not reported


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


class ReceiptCoalescer:
    def __init__(self, rpc: RpcClient, window_s: float = 0.1, max_batch: int = 1000, max_pending: int = 20000) -> None:
        self.rpc = rpc
        self.window = window_s
        self.max_batch = max(1, min(max_batch, 2000))  # ReceiptBatch holds at most 2000
        self.max_pending = max_pending
        self._pending: dict[Key, Marks] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def report(self, user: str, conv: str, delivered: int | None = None, read: int | None = None) -> None:
        """Remember a report (no I/O); it is sent with the next flush."""
        key = (user, conv)
        old = self._pending.get(key)
        if old is None:
            if len(self._pending) >= self.max_pending:
                REPORTS.labels("dropped").inc()
                return
            old = (None, None)
        self._pending[key] = (_max(old[0], delivered), _max(old[1], read))
        REPORTS.labels("coalesced").inc()
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop, then send what is pending (best effort, before the bus closes)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.window)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("receipt flush failed")

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        items = list(batch.items())
        for i in range(0, len(items), self.max_batch):
            chunk = items[i : i + self.max_batch]
            started = time.perf_counter()
            try:
                await self.rpc.request(ops.messages.RECEIPTS_APPLY, _batch(chunk))
            except ChatError as err:
                FLUSHES.labels(str(err.code)).inc()
                if err.code == ErrorCode.UNAVAILABLE:
                    self._merge_back(chunk)
                else:
                    log.warning("receipts refused", extra={"code": str(err.code), "error": err.message})
                continue
            FLUSHES.labels("ok").inc()
            FLUSH_SIZE.observe(len(chunk))
            log.debug("receipts flushed", extra={"n": len(chunk), "ms": (time.perf_counter() - started) * 1000})

    def _merge_back(self, chunk: list[tuple[Key, Marks]]) -> None:
        for key, (d, r) in chunk:
            now = self._pending.get(key, (None, None))
            self._pending[key] = (_max(now[0], d), _max(now[1], r))
        self._wake.set()


def _batch(chunk: list[tuple[Key, Marks]]) -> ReceiptBatch:
    return ReceiptBatch(
        updates=[ReceiptUpdate(conv=conv, user_id=user, delivered_seq=d, read_seq=r) for (user, conv), (d, r) in chunk]
    )
