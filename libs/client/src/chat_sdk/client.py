"""``ChatClient``: the asyncio API for apps.

client = await ChatClient.connect("http://127.0.0.1:8080", username="ann", password="…")
res = await client.send(conv_id, "hello")          # -> SendResult(seq=…, ts=…)
async for ev in client.events():                    # ordered, exactly once per (conv, seq)
    ...
await client.close()
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from chat_sdk.backoff import Backoff
from chat_sdk.conversations import ConversationsMixin
from chat_sdk.delivery import Delivery, End
from chat_sdk.errors import (
    ChatError,
    RateLimited,
    SendTimeout,
    Unauthorized,
    Unavailable,
    error_from_frame,
)
from chat_sdk.link import ConnectionLost, Disconnect, Link
from chat_sdk.models import HistoryPage, Item, SendResult, Tokens, Upload, User, parse_event, parse_live
from chat_sdk.options import ClientOptions
from chat_sdk.rest import Endpoints, Rest
from chat_sdk.tokens import TokenManager

log = logging.getLogger("chat_sdk")


# Pause before resending after a lost connection or an ack timeout.
_RESEND_PAUSE_S = 0.05


class ChatClient(ConversationsMixin):
    """Use :meth:`connect` to build one. All methods are coroutines on one event loop."""

    def __init__(
        self,
        rest: Rest,
        tokens: Tokens,
        options: ClientOptions,
        on_tokens: Callable[[Tokens], None] | None = None,
    ) -> None:
        self.options = options
        self._rest = rest
        self._tokens = TokenManager(tokens, rest.refresh_tokens, fraction=options.refresh_fraction, on_change=on_tokens)
        rest.token = lambda: self._tokens.access_token
        rest.refresh = self._refresh
        self._backoff = Backoff(options.backoff_base_s, options.backoff_cap_s)
        self._delivery = Delivery(self._fetch_after, hold_s=options.gap_hold_s)
        self._link = Link(
            rest.endpoints,
            self._tokens,
            backoff=self._backoff,
            on_frame=self._on_frame,
            on_ready=self._after_connect,
            on_fatal=self._delivery.end,
            connect_timeout=options.connect_timeout_s,
            heartbeat_misses=options.heartbeat_misses,
            backoff_reset_s=options.backoff_reset_s,
        )
        self._synced = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self._closed = False
        self.syncs = 0
        self.send_retries = 0
        self.realtime = True

    # -- construction ---------------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        base_url: str | Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        tokens: Tokens | Mapping[str, Any] | None = None,
        options: ClientOptions | None = None,
        on_tokens: Callable[[Tokens], None] | None = None,
        positions: Mapping[str, int] | None = None,
        realtime: bool = True,
    ) -> ChatClient:
        """Log in (or use ``tokens``), open the WebSocket and catch up.

        ``base_url``: one gateway (``http://host:port``) or several to fail over between.
        ``on_tokens`` is called with every new token pair (persist the refresh token: it
        rotates). ``positions`` (``{conv: last seq the app has}``, e.g. a saved
        :attr:`positions`) resumes from there; without it, each conversation starts at its
        current end and only newer events are delivered. ``realtime=False``: REST only (no
        WebSocket, no events; ``send()`` posts over REST with the same retry rules).
        """
        opts = options or ClientOptions()
        rest = Rest(Endpoints(base_url), timeout=opts.request_timeout_s)
        try:
            pair = await _initial_tokens(rest, username, password, tokens, on_tokens)
        except BaseException:
            await rest.aclose()
            raise
        client = cls(rest, pair, opts, on_tokens)
        client.realtime = realtime
        try:
            await client._start(positions)
        except BaseException:
            await client.close()
            raise
        return client

    @staticmethod
    async def register(
        base_url: str | Sequence[str], username: str, password: str, display_name: str | None = None
    ) -> User:
        """Create an account (``POST /v1/auth/register``)."""
        rest = Rest(Endpoints(base_url))
        try:
            return await rest.register(username, password, display_name)
        finally:
            await rest.aclose()

    @staticmethod
    async def login(base_url: str | Sequence[str], username: str, password: str) -> Tokens:
        """A token pair without connecting (e.g. to store it, then ``connect(tokens=…)``)."""
        rest = Rest(Endpoints(base_url))
        try:
            return await rest.login(username, password)
        finally:
            await rest.aclose()

    async def _start(self, positions: Mapping[str, int] | None) -> None:
        if self._tokens.due():
            await self._refresh(self._tokens.access_token)
        if not self.realtime:
            return
        if positions is None:
            positions = {c.id: c.last_seq for c in await self.list_conversations()}
        for conv, seq in positions.items():
            self._delivery.order.start(conv, int(seq))
        self._link.start()
        self._refresher = asyncio.create_task(self._refresh_loop(), name="chat_sdk.refresh")
        waits = [asyncio.ensure_future(self._synced.wait()), asyncio.ensure_future(self._link.closed.wait())]
        try:
            await asyncio.wait(waits, timeout=self.options.start_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self._link.fatal is not None:
            raise self._link.fatal
        if not self._synced.is_set():
            last = self._link.disconnects[-1].reason if self._link.disconnects else "no answer"
            raise Unavailable(f"could not connect within {self.options.start_timeout_s:g}s ({last})")

    # -- state ----------------------------------------------------------------------
    @property
    def user_id(self) -> str | None:
        return self._tokens.tokens.user_id

    @property
    def tokens(self) -> Tokens:
        """The newest token pair (the refresh token rotates on every refresh)."""
        return self._tokens.tokens

    @property
    def positions(self) -> dict[str, int]:
        """``{conv: last seq delivered to the app}``; pass it to :meth:`connect` to resume."""
        return self._delivery.order.positions()

    @property
    def connected(self) -> bool:
        return self._link.ready.is_set()

    @property
    def gateway_url(self) -> str | None:
        """The gateway of the current (or last) WebSocket connection."""
        return self._link.url

    @property
    def disconnects(self) -> list[Disconnect]:
        """Dropped connections, newest last (close code, reason, time)."""
        return list(self._link.disconnects)

    @property
    def stats(self) -> dict[str, int]:
        return {
            **self._delivery.stats,
            "duplicates": self._delivery.order.duplicates,
            "connects": self._link.connects,
            "reauths": self._link.reauths,
            "refreshes": self._tokens.refreshes,
            "syncs": self.syncs,
            "send_retries": self.send_retries,
        }

    # -- sending --------------------------------------------------------------------
    async def send(
        self,
        conv: str,
        body: str,
        *,
        client_msg_id: str | None = None,
        reply_to: int | None = None,
        attachments: Sequence[str | Upload] | None = None,
        deadline_s: float | None = None,
    ) -> SendResult:
        """Post a message; returns once the server stored it, with its seq.

        ``attachments``: your uploads (``upload()`` results or their ``media_id``s), 1..10;
        with attachments ``body`` may be empty.

        Sends the SAME ``client_msg_id`` again after a dropped connection, an ack timeout
        or ``unavailable`` (with backoff), and after ``rate_limited`` once ``retry_after``
        passed, until acked or ``deadline_s`` (default ``options.send_deadline_s``) →
        :class:`SendTimeout`. Any other refusal raises its typed error.
        """
        cmid = client_msg_id or uuid.uuid4().hex
        frame: dict[str, Any] = {"type": "send", "conv": conv, "client_msg_id": cmid, "body": body}
        if reply_to is not None:
            frame["reply_to"] = reply_to
        if attachments:
            frame["attachments"] = [a if isinstance(a, str) else a.media_id for a in attachments]
        loop = asyncio.get_running_loop()
        end = loop.time() + (self.options.send_deadline_s if deadline_s is None else deadline_s)
        attempt = 0
        while (left := end - loop.time()) > 0:
            try:
                return await self._send_once(frame, left)
            except (ConnectionLost, TimeoutError):
                self.send_retries += 1
                # A socket that just died fails at once, and its reader may not have run
                # yet: without a real pause this loop would never let it (nor anything else)
                # run, and spin until the deadline.
                await asyncio.sleep(min(_RESEND_PAUSE_S, max(0.0, end - loop.time())))
                continue
            except RateLimited as err:
                wait = err.retry_after if err.retry_after is not None else 1.0
            except Unavailable:
                wait = self._backoff.delay(attempt)
                attempt += 1
            self.send_retries += 1
            await asyncio.sleep(min(wait, max(0.0, end - loop.time())))
        raise SendTimeout(f"no ack for {cmid} in conversation {conv} before the deadline", client_msg_id=cmid)

    async def _send_once(self, frame: dict[str, Any], left: float) -> SendResult:
        conv, cmid = frame["conv"], frame["client_msg_id"]
        if not self.realtime:  # REST: the same idempotency key, the same answer
            body = {k: v for k, v in frame.items() if k not in ("type", "conv")}
            out = await self._rest.call("POST", f"/v1/conversations/{conv}/messages", json=body)
            return SendResult(conv=conv, seq=int(out["seq"]), ts=out.get("ts"), client_msg_id=cmid)
        await self._link.wait_ready(left)
        reply = await self._link.request(frame, min(self.options.ack_timeout_s, left))
        if reply.get("type") == "ack":
            return SendResult(conv=conv, seq=int(reply["seq"]), ts=reply.get("ts"), client_msg_id=cmid)
        raise error_from_frame(reply)

    async def mark_read(self, conv: str, seq: int) -> None:
        """Move the read watermark (best effort: dropped when not connected)."""
        await self._fire({"type": "read", "conv": conv, "seq": seq})

    async def mark_delivered(self, conv: str, seq: int) -> None:
        await self._fire({"type": "delivered", "conv": conv, "seq": seq})

    async def typing(self, conv: str) -> None:
        await self._fire({"type": "typing", "conv": conv})

    async def _fire(self, frame: dict[str, Any]) -> None:
        try:
            await self._link.send_frame(frame)
        except ConnectionLost:
            pass

    # -- receiving ------------------------------------------------------------------
    async def events(self) -> AsyncIterator[Item]:
        """Log events (per conversation in seq order, each once) plus receipts, typing and
        presence, as they arrive. Ends after :meth:`close`; raises the error that ended the
        session (e.g. :class:`Unauthorized` when the refresh token was refused). Read it
        from one task; events queue up (unbounded) until read."""
        q = self._delivery.queue
        while True:
            item = await q.get()
            if isinstance(item, End):
                q.put_nowait(item)  # every iterator sees the end
                if item.error is not None:
                    raise item.error
                return
            yield item

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        try:
            if kind == "event" and isinstance(frame.get("event"), dict):
                self._delivery.offer(parse_event(frame["event"]))
            elif (live := parse_live(frame)) is not None:
                self._delivery.passthrough(live)
            elif kind == "error":
                log.warning("server error frame: %s", frame)
        except ValueError as exc:  # pydantic.ValidationError: a frame we cannot read
            log.warning("ignoring a malformed %s frame: %s", kind, exc)

    async def _after_connect(self) -> None:
        """After every ``auth_ok``: ``sync`` all conversations from their positions, page the
        truncated ones over REST; retried with backoff while the connection lasts."""
        attempt = 0
        while True:
            try:
                await self._sync_all()
                break
            except ConnectionLost:
                raise
            except (ChatError, TimeoutError) as exc:
                log.warning("sync failed (%r); retrying", exc)
                await asyncio.sleep(self._backoff.delay(attempt))
                attempt += 1
        self.syncs += 1
        self._synced.set()

    async def _sync_all(self) -> None:
        await self._delivery.sync(self._link.request, self.options.sync_timeout_s)

    async def _fetch_after(self, conv: str, after: int) -> HistoryPage:
        return await self.history(conv, after=after, limit=200)

    # -- tokens ---------------------------------------------------------------------
    async def _refresh(self, stale: str) -> None:
        try:
            await self._tokens.refresh(stale=stale)
        except Unauthorized as err:
            asyncio.get_running_loop().create_task(self._link.fail(err))
            raise

    async def _refresh_loop(self) -> None:
        while True:
            delay = self._tokens.delay()
            if delay > 0:  # re-evaluated at least every minute: the pair may change meanwhile
                await asyncio.sleep(min(delay, 60.0))
                continue
            try:
                await self._refresh(self._tokens.access_token)
            except Unauthorized:
                return
            except ChatError as exc:  # transient: try again soon
                log.info("token refresh failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            await self._link.reauth()

    # -- closing --------------------------------------------------------------------
    async def close(self, *, logout: bool = False) -> None:
        """Close the connection (and with ``logout`` revoke the refresh token family)."""
        if self._closed:
            return
        self._closed = True
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        await self._link.close()
        if logout:
            try:
                await self._rest.logout(self._tokens.tokens.refresh_token)
            except ChatError as exc:
                log.info("logout failed: %s", exc)
        self._delivery.end(self._link.fatal)
        await self._rest.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _initial_tokens(
    rest: Rest,
    username: str | None,
    password: str | None,
    tokens: Tokens | Mapping[str, Any] | None,
    on_tokens: Callable[[Tokens], None] | None,
) -> Tokens:
    if tokens is not None:
        return tokens if isinstance(tokens, Tokens) else Tokens.model_validate(dict(tokens))
    if username is None or password is None:
        raise ValueError("give username and password, or tokens")
    pair = await rest.login(username, password)
    if on_tokens is not None:
        on_tokens(pair)
    return pair
