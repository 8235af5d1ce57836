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
from dataclasses import dataclass
from typing import Any

from chat_sdk.backoff import Backoff
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
from chat_sdk.models import Conversation, HistoryPage, Item, SendResult, Tokens, User, parse_event, parse_live
from chat_sdk.rest import Endpoints, Rest
from chat_sdk.tokens import TokenManager

log = logging.getLogger("chat_sdk")

SYNC_CHUNK = 500  # conversations per `sync` frame (a frame is at most 64 KiB)


@dataclass
class ClientOptions:
    """Tuning knobs; the defaults suit an interactive app."""

    backoff_base_s: float = 0.5  # reconnect backoff: full jitter over [0, min(cap, base * 2**n)]
    backoff_cap_s: float = 30.0
    backoff_reset_s: float = 5.0  # a connection that lived this long resets the backoff
    refresh_fraction: float = 0.8  # refresh the access token at this share of its lifetime
    heartbeat_misses: int = 3  # dead after heartbeat_misses x heartbeat_s of silence
    connect_timeout_s: float = 10.0  # one WebSocket connect + auth
    start_timeout_s: float = 30.0  # ChatClient.connect() gives up after this
    send_deadline_s: float = 60.0  # send() keeps retrying until this
    ack_timeout_s: float = 15.0  # no ack within this → resend (the gateway answers within 10 s)
    sync_timeout_s: float = 30.0
    gap_hold_s: float = 0.5  # a gap older than this is filled over REST
    request_timeout_s: float = 30.0  # REST


class ChatClient:
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
            if tokens is None:
                if username is None or password is None:
                    raise ValueError("give username and password, or tokens")
                tokens = await rest.login(username, password)
                if on_tokens is not None:
                    on_tokens(tokens)
            elif not isinstance(tokens, Tokens):
                tokens = Tokens.model_validate(dict(tokens))
        except BaseException:
            await rest.aclose()
            raise
        client = cls(rest, tokens, opts, on_tokens)
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
        attachments: list[dict[str, Any]] | None = None,
        deadline_s: float | None = None,
    ) -> SendResult:
        """Post a message; returns once the server stored it, with its seq.

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
            frame["attachments"] = attachments
        loop = asyncio.get_running_loop()
        end = loop.time() + (self.options.send_deadline_s if deadline_s is None else deadline_s)
        attempt = 0
        while (left := end - loop.time()) > 0:
            try:
                return await self._send_once(frame, left)
            except (ConnectionLost, TimeoutError):
                self.send_retries += 1
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
        positions = self._delivery.order.positions()
        self._delivery.syncing.update(positions)
        truncated: list[str] = []
        try:
            items = list(positions.items())
            for i in range(0, len(items), SYNC_CHUNK):
                chunk = dict(items[i : i + SYNC_CHUNK])
                reply = await self._link.request({"type": "sync", "positions": chunk}, self.options.sync_timeout_s)
                if reply.get("type") != "sync_done":
                    raise error_from_frame(reply)
                for conv in reply.get("not_found") or []:
                    self._delivery.order.forget(conv)  # no longer a member
                truncated.extend(reply.get("truncated") or [])
            for conv in truncated:
                await self._delivery.catch_up(conv)
        finally:
            self._delivery.syncing.difference_update(positions)
            for conv in positions:
                self._delivery.check(conv)

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

    # -- REST -----------------------------------------------------------------------
    async def me(self) -> User:
        return User.model_validate(await self._rest.call("GET", "/v1/me"))

    async def history(
        self, conv: str, *, before: int | None = None, after: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """``GET …/messages`` (ascending; see PROTOCOL §3 for before/after/limit)."""
        params = {k: v for k, v in (("before", before), ("after", after), ("limit", limit)) if v is not None}
        return HistoryPage.parse(await self._rest.call("GET", f"/v1/conversations/{conv}/messages", params=params))

    async def create_conversation(
        self, kind: str, *, name: str | None = None, private: bool | None = None, members: Sequence[str] = ()
    ) -> Conversation:
        body: dict[str, Any] = {"kind": kind, "members": list(members)}
        if name is not None:
            body["name"] = name
        if private is not None:
            body["private"] = private
        status, out = await self._rest.call_status("POST", "/v1/conversations", json=body)
        conv = Conversation.model_validate(out)
        # A new conversation is followed from its start; an existing dm (200) from its end.
        self._delivery.order.start(conv.id, 0 if status == 201 else conv.last_seq)
        return conv

    async def list_conversations(self) -> list[Conversation]:
        out = await self._rest.call("GET", "/v1/conversations")
        return [Conversation.model_validate(c) for c in out.get("conversations", [])]

    async def get_conversation(self, conv: str) -> Conversation:
        return Conversation.model_validate(await self._rest.call("GET", f"/v1/conversations/{conv}"))

    async def join(self, conv: str) -> Conversation:
        """Join a public channel; its events are delivered from the ``member_joined`` on."""
        return Conversation.model_validate(await self._rest.call("POST", f"/v1/conversations/{conv}/join"))

    async def add_member(self, conv: str, user_id: str, role: str | None = None) -> Conversation:
        body: dict[str, Any] = {"user_id": user_id} | ({"role": role} if role else {})
        out = await self._rest.call("POST", f"/v1/conversations/{conv}/members", json=body)
        return Conversation.model_validate(out)

    async def leave(self, conv: str) -> None:
        await self._rest.call("DELETE", f"/v1/conversations/{conv}/members/{self.user_id}")

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
