"""A WebSocket peer for the integration tests (PROTOCOL §4): one authenticated connection
whose frames are demultiplexed by a reader task, a windowed sender, and user set-up."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from helpers.chat_client import Api, User, Ws

Frame = dict[str, Any]


class Peer:
    """One authenticated WS connection whose frames are demultiplexed by a reader task:
    ``event`` frames into ``events`` (in arrival order), answers to our own frames by ``ref``,
    ``presence`` frames (which any connection may get at any time) into ``presence``,
    everything else into ``other``."""

    def __init__(self, ws: Ws, user: User) -> None:
        self.ws, self.user = ws, user
        self.events: list[Frame] = []
        self.other: list[Frame] = []
        self.presence: list[Frame] = []
        self._replies: dict[str, asyncio.Future[Frame]] = {}
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    @classmethod
    async def connect(cls, ws_url: str, user: User) -> Peer:
        return cls(await Ws.connect(ws_url, user.access_token), user)

    async def _run(self) -> None:
        while True:
            f = await self.ws.frames.get()
            ref = f.get("ref")
            if f.get("type") == "event":
                self.events.append(f["event"])
            elif f.get("type") == "presence":
                self.presence.append(f)
            elif isinstance(ref, str) and ref in self._replies:
                fut = self._replies.pop(ref)
                if not fut.done():
                    fut.set_result(f)
            else:
                self.other.append(f)
            self._changed.set()

    async def request(self, frame: Frame) -> asyncio.Future[Frame]:
        """Send ``frame`` (which must carry a fresh ``ref``); the future resolves to the answer."""
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._replies[frame["ref"]] = fut
        await self.ws.send(frame)
        return fut

    async def call(self, frame: Frame, within: float = 15) -> Frame:
        return await asyncio.wait_for(await self.request(frame), within)

    async def send_msg(self, conv: str, body: str, cmid: str | None = None, **extra: Any) -> Frame:
        ref = uuid.uuid4().hex
        return await self.call(
            {
                "type": "send",
                "ref": ref,
                "conv": conv,
                "client_msg_id": cmid or uuid.uuid4().hex,
                "body": body,
                **extra,
            }
        )

    async def wait_for_seq(self, conv: str, seq: int, within: float = 30) -> None:
        """Until an event of ``conv`` with seq >= ``seq`` has arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not any(e["conv"] == conv and e["seq"] >= seq for e in self.events):
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                got = [(e["conv"], e["seq"]) for e in self.events[-5:]]
                raise AssertionError(f"{self.user.username}: no event {conv}#{seq} in {within}s; last: {got}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_events(self, n: int, within: float = 30) -> list[Frame]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.events) < n:
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{self.user.username}: {len(self.events)} events, expected {n}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return self.events

    async def close(self) -> None:
        self._task.cancel()
        await self.ws.close()


async def pump(
    peer: Peer, conv: str, msgs: list[tuple[str, str]], window: int = 50, within: float = 120
) -> tuple[dict[str, Frame], list[str], bool]:
    """Send ``(client_msg_id, body)`` pairs over ``peer``, at most ``window`` unanswered at once.

    Returns the acks by client_msg_id, the client_msg_ids in the order their acks arrived,
    and whether any send was rate-limited (and so retried out of order).
    A ``rate_limited`` refusal is retried with the same client_msg_id, one at a time, after
    ``retry_after_ms`` (PROTOCOL §4 rate limits); any other error fails the test.
    """
    acks: dict[str, Frame] = {}
    ack_order: list[str] = []
    limited: list[tuple[str, str, Frame]] = []
    sem = asyncio.Semaphore(window)

    def frame(cmid: str, body: str) -> Frame:
        return {
            "type": "send",
            "ref": f"{cmid}/{uuid.uuid4().hex[:6]}",
            "conv": conv,
            "client_msg_id": cmid,
            "body": body,
        }

    def settle(cmid: str, body: str, f: Frame) -> None:
        if f["type"] == "ack":
            acks[cmid] = f
            ack_order.append(cmid)
        elif f["type"] == "error" and f.get("code") == "rate_limited":
            limited.append((cmid, body, f))
        else:
            raise AssertionError(f"send {cmid} refused: {f}")

    async def one(cmid: str, body: str, fut: asyncio.Future[Frame]) -> None:
        try:
            settle(cmid, body, await asyncio.wait_for(fut, within))
        finally:
            sem.release()

    tasks = []
    for cmid, body in msgs:
        await sem.acquire()
        if limited:  # throttled: stop pipelining and fall back to one at a time below
            sem.release()
            limited.append((cmid, body, {}))
            continue
        fut = await peer.request(frame(cmid, body))
        tasks.append(asyncio.create_task(one(cmid, body, fut)))
    await asyncio.gather(*tasks)
    # Throttled sends (only when the server rate-limits): strictly one at a time.
    position = {m[0]: i for i, m in enumerate(msgs)}
    throttled = bool(limited)
    for cmid, body, err in sorted(limited, key=lambda x: position[x[0]]):
        while True:
            await asyncio.sleep(err.get("retry_after_ms", 0) / 1000 if err else 0)
            f = await peer.call(frame(cmid, body), within)
            if f["type"] == "error" and f.get("code") == "rate_limited":
                err = f
                continue
            assert f["type"] == "ack", f"send {cmid} refused: {f}"
            acks[cmid] = f
            ack_order.append(cmid)
            break
    return acks, ack_order, throttled


async def users(api: Api, *prefixes: str) -> list[User]:
    return [await api.register_login(p) for p in prefixes]
