"""A small black-box client for integration tests: REST over httpx, WebSocket over websockets.

Speaks PROTOCOL v1 exactly as an app would; nothing here reaches into a service.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

PASSWORD = "correct horse battery"


@dataclass
class User:
    id: str
    username: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Api:
    """REST client bound to one gateway."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def register_login(self, prefix: str = "u") -> User:
        name = f"{prefix}{uuid.uuid4().hex[:10]}"
        r = await self.http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = await self.http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
        return User(body["user"]["id"], name, body["access_token"], body["refresh_token"])

    async def create(self, user: User, kind: str, members: list[User] | list[str] = (), **kw: Any) -> dict[str, Any]:  # type: ignore[assignment]
        ids = [m.id if isinstance(m, User) else m for m in members]
        r = await self.http.post("/v1/conversations", headers=user.headers, json={"kind": kind, "members": ids, **kw})
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    async def history(self, user: User, conv: str, **params: Any) -> httpx.Response:
        return await self.http.get(f"/v1/conversations/{conv}/messages", headers=user.headers, params=params)

    async def all_events(self, user: User, conv: str) -> list[dict[str, Any]]:
        """The whole log, paging forward with ``after``."""
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            r = await self.history(user, conv, after=after, limit=200)
            assert r.status_code == 200, r.text
            page = r.json()
            out.extend(page["events"])
            if not page["has_more"] or not page["events"]:
                return out
            after = page["events"][-1]["seq"]

    async def send(self, user: User, conv: str, body: str, client_msg_id: str | None = None) -> httpx.Response:
        return await self.http.post(
            f"/v1/conversations/{conv}/messages",
            headers=user.headers,
            json={"client_msg_id": client_msg_id or uuid.uuid4().hex, "body": body},
        )


@dataclass
class Ws:
    """One WebSocket connection. Frames are read by a background task into ``frames``."""

    conn: ClientConnection
    frames: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, ws_url: str, token: str | None = None, **kw: Any) -> Ws:
        conn = await websockets.connect(ws_url, max_size=None, **kw)
        ws = cls(conn)
        ws._reader = asyncio.create_task(ws._read())
        if token is not None:
            await ws.send({"type": "auth", "token": token})
            ok = await ws.expect("auth_ok")
            assert ok["type"] == "auth_ok"
        return ws

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                self.frames.put_nowait(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.conn.close_code
            self.closed.set()

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.conn.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def expect(self, type_: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        """The next frame of ``type_`` (matching ``match``); other frames are skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            f = await self.next(max(0.01, deadline - loop.time()))
            if f.get("type") == type_ and all(f.get(k) == v for k, v in match.items()):
                return f

    async def wait_closed(self, timeout: float = 10) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while not self.frames.empty():
            out.append(self.frames.get_nowait())
        return out

    async def close(self) -> None:
        await self.conn.close()
        if self._reader:
            await asyncio.wait([self._reader], timeout=5)
