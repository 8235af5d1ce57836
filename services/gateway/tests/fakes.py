"""Shared fakes for the realtime core's unit tests: a recording ``Transport``, a
``MessagesApi`` that answers from an in-memory log, connections with their writer task,
and a bounded wait helper (tests never sleep a fixed time to let things happen)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from chat_gateway.connection import Connection
from chat_gateway.sync import ConnectionSync
from chat_proto import frames as F
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.replies import Events, SyncReply, UserConvs, WireEvent

Event = dict[str, Any]


class FakeTransport:
    """``ports.Transport``: records what is written and how it was closed. ``gate`` (set by
    default) can be cleared to make ``send_text`` block, as a socket whose peer stops reading."""

    def __init__(self, *, blocked: bool = False) -> None:
        self.sent: list[str] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closes = 0
        self.gate = asyncio.Event()
        if not blocked:
            self.gate.set()

    async def send_text(self, data: str) -> None:
        await self.gate.wait()
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closes += 1
        self.close_code, self.close_reason = code, reason

    @property
    def closed(self) -> bool:
        return self.closes > 0

    def frames(self) -> list[dict[str, Any]]:
        return [orjson.loads(t) for t in self.sent]

    def seqs(self, conv: str | None = None) -> list[int]:
        """Seqs of the event frames written (of ``conv`` only, when given)."""
        return [
            f["event"]["seq"]
            for f in self.frames()
            if f.get("type") == "event" and (conv is None or f["event"]["conv"] == conv)
        ]

    def kinds(self) -> list[str]:
        """Frame types in order; events as ``event:<conv>:<seq>``."""
        out = []
        for f in self.frames():
            if f.get("type") == "event":
                out.append(f"event:{f['event']['conv']}:{f['event']['seq']}")
            else:
                out.append(str(f.get("type")))
        return out


def event(conv: str, seq: int, kind: str = "message", sender: str = "u1", **extra: Any) -> Event:
    """An event as on the wire (``chat_proto.events.Event.to_wire``)."""
    ev: Event = {"conv": conv, "seq": seq, "kind": kind, "sender": sender, "ts": f"2024-01-01T00:00:{seq:02d}.000Z"}
    if kind == "message":
        ev.setdefault("client_msg_id", f"m{seq}")
        ev.setdefault("body", f"hello {seq}")
    ev.update(extra)
    return ev


def event_frame(ev: Event) -> str:
    """The event frame a connection is given (as the hub encodes it)."""
    return F.event_frame_from_event_json(orjson.dumps(ev))


class FakeMessages:
    """``ports.MessagesApi`` from memory.

    - ``convs[user]``: ``[(conv, last_seq, role)]`` answered by ``user_convs``;
    - ``log[conv]``: the conversation's events (``events`` and ``sync`` read it; a conversation
      without a log is ``not_found`` to ``sync``);
    - ``sync_reply``: a fixed answer to ``sync`` instead; ``sync_error``: raised by ``sync``;
      ``sync_gate``: when set to an unset event, ``sync`` waits for it (after computing its answer);
    - ``stored[(user, conv, client_msg_id)]``: what ``lookup_send`` finds (else ``not_found``).
    Every call is recorded in ``calls`` as ``(name, *args)``.
    """

    def __init__(self, convs: dict[str, list[tuple[str, int, str]]] | None = None) -> None:
        self.convs = convs if convs is not None else {}
        self.log: dict[str, list[Event]] = {}
        self.sync_reply: SyncReply | None = None
        self.sync_error: ChatError | None = None
        self.sync_gate: asyncio.Event | None = None
        self.stored: dict[tuple[str, str, str], Event] = {}
        self.calls: list[tuple[Any, ...]] = []

    def add(self, conv: str, *seqs: int, **extra: Any) -> list[Event]:
        evs = [event(conv, s, **extra) for s in seqs]
        self.log.setdefault(conv, []).extend(evs)
        self.log[conv].sort(key=lambda e: e["seq"])
        return evs

    def called(self, name: str) -> list[tuple[Any, ...]]:
        return [c[1:] for c in self.calls if c[0] == name]

    async def user_convs(self, user: str) -> UserConvs:
        self.calls.append(("user_convs", user))
        items = [{"id": c, "last_seq": s, "role": r} for c, s, r in self.convs.get(user, [])]
        return UserConvs.model_validate({"convs": items})

    async def events(self, conv: str, after: int, before: int | None = None) -> Events:
        self.calls.append(("events", conv, after, before))
        evs = [e for e in self.log.get(conv, []) if e["seq"] > after and (before is None or e["seq"] < before)]
        return Events.model_validate({"events": evs})

    async def sync(self, user: str, positions: list[tuple[str, int]], per_conv: int, max_bytes: int) -> SyncReply:
        self.calls.append(("sync", user, list(positions), per_conv, max_bytes))
        if self.sync_reply is not None:
            reply = self.sync_reply
        else:
            items, not_found = [], []
            for conv, after in positions:
                if conv not in self.log:
                    not_found.append(conv)
                    continue
                evs = [e for e in self.log[conv] if e["seq"] > after]
                items.append({"conv": conv, "events": evs[:per_conv], "has_more": len(evs) > per_conv})
            reply = SyncReply.model_validate({"convs": items, "not_found": not_found, "rest": []})
        if self.sync_gate is not None:
            await self.sync_gate.wait()
        if self.sync_error is not None:
            raise self.sync_error
        return reply

    async def lookup_send(self, user: str, conv: str, client_msg_id: str) -> WireEvent:
        self.calls.append(("lookup_send", user, conv, client_msg_id))
        ev = self.stored.get((user, conv, client_msg_id))
        if ev is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such send")
        return WireEvent.model_validate(ev)


@dataclass(eq=False)
class Client:
    """A ``Connection`` of ``user`` on a ``FakeTransport``, with its writer task (if started)."""

    conn: Connection
    ws: FakeTransport
    writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.writer is None:
            self.writer = asyncio.create_task(self.conn.writer())

    async def stop(self) -> None:
        if self.writer is not None and not self.writer.done():
            self.writer.cancel()
            try:
                await self.writer
            except asyncio.CancelledError:
                pass

    def seqs(self, conv: str | None = None) -> list[int]:
        return self.ws.seqs(conv)


def client(
    user: str = "u1",
    *,
    max_frames: int = 1000,
    max_bytes: int = 1_000_000,
    run: bool = True,
    blocked: bool = False,
) -> Client:
    """A connection of ``user``; ``run``: its writer task runs (needs a running loop)."""
    ws = FakeTransport(blocked=blocked)
    conn = Connection(ws, max_frames=max_frames, max_bytes=max_bytes)
    conn.user = user
    c = Client(conn, ws)
    if run:
        c.start()
    return c


async def write_answer(conn: Connection, answer: Any) -> None:
    """Write one frame's answer as ``answers.Answers.write_all`` does: its frames through
    ``push_reply`` (evaluated now when given as a function), then its action."""
    frames, after = answer
    for text in frames() if callable(frames) else frames:
        await conn.push_reply(text)
    if after is not None:
        after()


async def answer_sync(sync: ConnectionSync, positions: dict[str, int], ref: str | None = None) -> None:
    """A ``sync`` frame of ``positions`` handled and its answer written."""
    frame = F.SyncFrame(type="sync", positions=positions, ref=ref)
    await write_answer(sync.conn, await sync.answer(frame))


async def eventually(cond: Callable[[], bool], within: float = 2.0, what: str = "") -> None:
    """Wait until ``cond()`` holds, at most ``within`` seconds (a failure, not a hang)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s{': ' + what if what else ''}")
        await asyncio.sleep(0.002)


async def settle(rounds: int = 20) -> None:
    """Let every ready task run a few times (nothing here waits on a timer)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
