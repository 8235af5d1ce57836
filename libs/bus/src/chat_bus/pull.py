"""A continuous pull on a JetStream durable: commands stream in as they arrive.

nats-py's ``fetch()`` is one request/response per call, and ``fetch(n)`` either lingers
until it has ``n`` messages or sends a second request, so at moderate rates it costs two
pull requests, a status message and a gathering delay per batch. This keeps pull
requests outstanding on the server instead (what the newer clients call "consume"):
one request of ``batch`` messages with an expiry, topped up when half of it has been
delivered, and renewed before it expires. Messages go straight to ``sink``.

Accounting of what is still requested is kept from the delivered messages and the
``Nats-Pending-Messages`` header of the server's 408/409 status messages; a watchdog
starts over after a reconnect or when no request can still be open, so a lost status
message costs at most one expiry period, never the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger("chat.bus.pull")


class PullStream:
    def __init__(
        self,
        nc: NATS,
        stream: str,
        durable: str,
        sink: Callable[[Msg], None],
        *,
        batch: int = 256,
        expires_s: float = 5.0,
        api_prefix: str = "$JS.API",
    ) -> None:
        self.nc = nc
        self.sink = sink
        self.batch = max(2, batch)
        self.expires_s = expires_s
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._pending = 0  # messages requested and not yet delivered or expired
        self._last_pull = 0.0
        self._reconnects = 0
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self._inbox, cb=self._on_msg, pending_msgs_limit=-1)
        self._reconnects = self.nc.stats["reconnects"]
        await self._pull()
        self._watchdog = asyncio.create_task(self._watch(), name="pull-watchdog")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass

    async def _pull(self) -> None:
        want = self.batch - self._pending
        if want <= 0:
            return
        req = {"batch": want, "expires": int(self.expires_s * 1e9)}
        await self.nc.publish(self._next_subject, orjson.dumps(req), reply=self._inbox)
        self._pending += want
        self._last_pull = time.monotonic()

    async def _on_msg(self, msg: Msg) -> None:
        hdrs = msg.headers
        if hdrs and not msg.data and "Status" in hdrs:
            status = hdrs["Status"]
            if status == "100":  # idle heartbeat / flow control: nothing to account
                return
            # 408 request expired, 409 (max waiting, leadership change, ...): the
            # undelivered rest of that request is gone.
            left = hdrs.get("Nats-Pending-Messages")
            if left is not None and left.isdigit():
                self._pending = max(0, self._pending - int(left))
            if status != "408":
                log.info("pull request ended", extra={"status": status, "reason": hdrs.get("Description")})
        else:
            self._pending -= 1
            self.sink(msg)
        if self._pending <= self.batch // 2:
            await self._pull()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.expires_s / 2))
            try:
                reconnects = self.nc.stats["reconnects"]
                now = time.monotonic()
                if reconnects != self._reconnects or now - self._last_pull > self.expires_s * 0.9:
                    # After a reconnect, requests (and messages) may have been lost on the
                    # way; near expiry, everything requested runs out. Start over: asking
                    # again is harmless, the server delivers each message to one request.
                    self._reconnects = reconnects
                    self._pending = 0
                    await self._pull()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pull renewal failed", extra={"error": repr(exc)})
