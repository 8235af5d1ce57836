"""The WebSocket link: connect, authenticate, read, detect a dead connection, reconnect.

- Reconnects after ANY drop (network error, close 1001/1006/1012/4008/4009, a dead
  connection) with exponential backoff and full jitter, moving to the next gateway URL.
- Close 4003 (token expired) and 4001 refresh the tokens first; when the refresh is refused
  the link stops with :class:`Unauthorized` (the session is over).
- Dead-connection detection: every byte read from the socket (data frames, and the
  server's ping control frames every ``heartbeat_s``) counts as life; after
  ``heartbeat_misses x heartbeat_s`` of silence (from ``auth_ok``) the connection is
  aborted and replaced. The websockets library's own keepalive is disabled.
- ``request()`` sends a frame with a fresh ``ref`` and waits for the answer carrying it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from chat_sdk.backoff import Backoff
from chat_sdk.errors import ChatError, ClientClosed, Unauthorized, Unavailable
from chat_sdk.rest import Endpoints
from chat_sdk.tokens import TokenManager

log = logging.getLogger("chat_sdk.link")

CLOSE_UNAUTHORIZED = 4001
CLOSE_TOKEN_EXPIRED = 4003
CLOSE_DEAD = 1006  # what the link records when it aborts a silent connection


class ConnectionLost(Unavailable):
    """The WebSocket dropped (or was not up) before the answer came; retry after reconnect."""


class _Conn(ClientConnection):
    """A client connection that remembers when it last received anything at all."""

    last_rx: float = 0.0

    def data_received(self, data: bytes) -> None:
        self.last_rx = self.loop.time()
        super().data_received(data)


@dataclass
class Disconnect:
    """One dropped connection (``client.disconnects`` keeps them, newest last)."""

    url: str
    code: int | None
    reason: str
    at: float
    was_ready: bool


@dataclass
class _Outcome:
    url: str
    token: str
    ready_at: float | None = None  # loop time of auth_ok
    code: int | None = None
    reason: str = ""


class Link:
    def __init__(
        self,
        endpoints: Endpoints,
        tokens: TokenManager,
        *,
        backoff: Backoff,
        on_frame: Callable[[dict[str, Any]], None],
        on_ready: Callable[[], Awaitable[None]],
        on_fatal: Callable[[ChatError], None],
        connect_timeout: float = 10.0,
        heartbeat_misses: int = 3,
        backoff_reset_s: float = 5.0,
        max_message_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.endpoints, self.tokens, self.backoff = endpoints, tokens, backoff
        self._on_frame, self._on_ready, self._on_fatal = on_frame, on_ready, on_fatal
        self.connect_timeout = connect_timeout
        self.heartbeat_misses = heartbeat_misses
        self.backoff_reset_s = backoff_reset_s
        self.max_message_bytes = max_message_bytes
        self.ready = asyncio.Event()
        self.closed = asyncio.Event()
        self.fatal: ChatError | None = None
        self.disconnects: list[Disconnect] = []
        self.connects = 0
        self.reauths = 0
        self.heartbeat_s: float | None = None
        self.session_id: str | None = None
        #: base URL of the gateway of the current (or last) authenticated connection
        self.url: str | None = None
        self._conn: _Conn | None = None
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._refs = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._session_tasks: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()
        self._dead_reason: str | None = None

    # -- public ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chat_sdk.link")

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until a connection is authenticated; raises the fatal error / ClientClosed, or
        TimeoutError."""
        if not self.ready.is_set():
            waits = [asyncio.ensure_future(self.ready.wait()), asyncio.ensure_future(self.closed.wait())]
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        self._raise_if_over()
        if not self.ready.is_set():
            raise TimeoutError("not connected")

    def _raise_if_over(self) -> None:
        if self.fatal is not None:
            raise self.fatal
        if self.closed.is_set() or self._closing.is_set():
            raise ClientClosed("client closed")

    async def request(self, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``frame`` with a new ``ref``; the server's answer with that ``ref``."""
        self._raise_if_over()
        conn = self._conn
        if conn is None or not self.ready.is_set():
            raise ConnectionLost("not connected")
        ref = f"r{next(self._refs)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[ref] = fut
        try:
            await conn.send(json.dumps({**frame, "ref": ref}))
            return await asyncio.wait_for(fut, timeout)
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost("connection closed") from exc
        finally:
            self._waiters.pop(ref, None)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Send a frame that gets no answer (receipts, typing)."""
        self._raise_if_over()
        conn = self._conn
        if conn is None or not self.ready.is_set():
            raise ConnectionLost("not connected")
        try:
            await conn.send(json.dumps(frame))
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost("connection closed") from exc

    async def fail(self, err: ChatError) -> None:
        """Stop for good with ``err`` (e.g. the refresh token was refused over REST)."""
        if self.fatal is not None or self.closed.is_set():
            return
        self._set_fatal(err)
        await self.close()

    async def reauth(self) -> bool:
        """Re-authenticate the open connection in place with the current access token
        (PROTOCOL §4). False when there is no connection or it did not answer ``auth_ok``."""
        if not self.ready.is_set():
            return False
        try:
            reply = await self.request({"type": "auth", "token": self.tokens.access_token}, self.connect_timeout)
        except (ChatError, TimeoutError) as exc:
            log.info("re-auth not answered: %s", exc)
            return False
        if reply.get("type") != "auth_ok":
            log.warning("re-auth refused: %s", reply)
            return False
        self.reauths += 1
        return True

    async def close(self) -> None:
        self._closing.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):  # best effort: we are leaving anyway
                await asyncio.wait_for(conn.close(1000, "client closing"), 2)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail_waiters(ClientClosed("client closed"))
        self.closed.set()

    # -- the loop -------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        try:
            while not self._closing.is_set():
                out = await self._attempt(self.endpoints.current)
                if self._closing.is_set():
                    return
                self._record(out)
                self.endpoints.failed(out.url)
                if out.code in (CLOSE_UNAUTHORIZED, CLOSE_TOKEN_EXPIRED):
                    # A refused refresh ends the session here (Unauthorized propagates).
                    await self._refresh_after_close(out.token)
                lived = time.monotonic() - out.ready_at if out.ready_at is not None else 0.0
                failures = 0 if lived >= self.backoff_reset_s else failures
                delay = self.backoff.delay(failures)
                failures += 1
                log.info("reconnecting in %.2fs (close %s %s)", delay, out.code, out.reason)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
        except ChatError as err:  # the session is over (refused refresh, 4001 after refresh)
            self._set_fatal(err)
        except Exception as exc:  # a bug: surface it instead of hanging the app
            log.exception("link failed")
            self._set_fatal(ChatError(f"client link failed: {exc!r}"))
        finally:
            self.ready.clear()
            self.closed.set()

    def _set_fatal(self, err: ChatError) -> None:
        if self.fatal is not None:
            return
        self.fatal = err
        self._fail_waiters(err)
        self._on_fatal(err)

    async def _refresh_after_close(self, token: str) -> None:
        try:
            await self.tokens.refresh(stale=token)
        except Unauthorized:
            raise
        except ChatError as exc:  # transient: the next attempt refreshes again when due
            log.info("refresh after close failed: %s", exc)

    def _record(self, out: _Outcome) -> None:
        self.disconnects.append(Disconnect(out.url, out.code, out.reason, time.time(), out.ready_at is not None))
        del self.disconnects[:-100]

    async def _attempt(self, url: str) -> _Outcome:
        out = _Outcome(url, self.tokens.access_token)
        try:
            out.token = await self._fresh_token()
            conn = await websockets.connect(
                self.endpoints.ws_url(url),
                create_connection=_Conn,
                ping_interval=None,
                open_timeout=self.connect_timeout,
                max_size=self.max_message_bytes,
            )
        except Unauthorized:
            raise
        except (ChatError, OSError, TimeoutError, websockets.WebSocketException) as exc:
            out.reason = f"connect failed: {exc.__class__.__name__}: {exc}"
            return out
        assert isinstance(conn, _Conn)
        try:
            await self._serve(conn, out)
        finally:
            await self._teardown(conn, out)
        return out

    async def _fresh_token(self) -> str:
        """The access token, refreshed if due; if that refresh fails transiently, the
        current token as long as it is still valid."""
        try:
            return await self.tokens.ensure_fresh()
        except Unauthorized:
            raise
        except ChatError:
            if self.tokens.expired():
                raise
            return self.tokens.access_token

    async def _serve(self, conn: _Conn, out: _Outcome) -> None:
        try:
            if not await self._authenticate(conn, out):
                return
            async for raw in conn:
                self._dispatch(raw)
        except websockets.ConnectionClosed:
            pass
        except (OSError, TimeoutError) as exc:
            out.reason = f"{exc.__class__.__name__}: {exc}"

    async def _authenticate(self, conn: _Conn, out: _Outcome) -> bool:
        await conn.send(json.dumps({"type": "auth", "token": out.token}))
        try:
            first = json.loads(await asyncio.wait_for(conn.recv(), self.connect_timeout))
        except TimeoutError:
            out.reason = "no auth_ok in time"
            return False
        except ValueError:
            first = None
        if not isinstance(first, dict) or first.get("type") != "auth_ok":
            out.reason = f"auth refused: {first}"
            with contextlib.suppress(Exception):  # wait for the server's close code
                await asyncio.wait_for(conn.wait_closed(), 2)
            return False
        self.heartbeat_s = float(first.get("heartbeat_s") or 5)
        self.session_id = first.get("session_id")
        out.ready_at = time.monotonic()
        self.url = out.url
        self._conn = conn
        self.connects += 1
        self.ready.set()
        self._spawn(self._watchdog(conn, self.heartbeat_s))
        self._spawn(self._run_on_ready())
        if self.tokens.access_token != out.token:  # refreshed while connecting
            self._spawn(self.reauth())
        return True

    async def _teardown(self, conn: _Conn, out: _Outcome) -> None:
        self.ready.clear()
        self._conn = None
        for t in list(self._session_tasks):
            t.cancel()
        await asyncio.gather(*self._session_tasks, return_exceptions=True)
        self._session_tasks.clear()
        self._fail_waiters(ConnectionLost("connection lost"))
        if self._dead_reason is not None:
            out.code, out.reason, self._dead_reason = CLOSE_DEAD, self._dead_reason, None
        else:
            with contextlib.suppress(Exception):  # best effort
                await asyncio.wait_for(conn.close(), 1)
            out.code = conn.close_code if out.code is None else out.code
            out.reason = out.reason or (conn.close_reason or "")

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)

    async def _run_on_ready(self) -> None:
        try:
            await self._on_ready()
        except (ConnectionLost, TimeoutError) as exc:
            log.info("after-connect work interrupted: %s", exc)
        except ChatError as exc:
            log.warning("after-connect work failed: %s", exc)

    async def _watchdog(self, conn: _Conn, heartbeat_s: float) -> None:
        loop = asyncio.get_running_loop()
        limit = self.heartbeat_misses * heartbeat_s
        conn.last_rx = max(conn.last_rx, loop.time())
        while True:
            await asyncio.sleep(min(1.0, heartbeat_s / 2))
            silent = loop.time() - conn.last_rx
            if silent > limit:
                log.warning("nothing received for %.1fs: connection is dead", silent)
                self._dead_reason = f"no data or ping for {silent:.1f}s (heartbeat {heartbeat_s:g}s)"
                conn.transport.abort()
                return

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning("ignoring a frame that is not JSON")
            return
        if not isinstance(frame, dict):
            return
        ref = frame.get("ref")
        if isinstance(ref, str):
            fut = self._waiters.pop(ref, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(frame)
                return
        self._on_frame(frame)

    def _fail_waiters(self, err: ChatError) -> None:
        waiters, self._waiters = self._waiters, {}
        for fut in waiters.values():
            if not fut.done():
                fut.set_exception(err)
