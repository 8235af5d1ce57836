"""The fanout's fast path (connection.py, wire.py): prepared frames written straight to a
``FrameSink`` once per loop iteration, the same bytes to every recipient, no writer task
involved; the queue (and its bounds) only for sockets that cannot take more."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from types import SimpleNamespace

import orjson
import pytest
from chat_gateway.connection import Connection
from chat_gateway.hub import Hub
from chat_gateway.memory_bus import MemoryBus
from chat_gateway.wire import OutFrame, text_frame
from chat_gateway.ws_protocol import SINK_EXTENSION, ProtocolSink, frame_sink
from chat_proto import subjects
from chat_proto.frames import CLOSE_SLOW_CONSUMER
from fakes import FakeMessages, FakeTransport, event, event_frame, eventually, settle
from websockets.frames import Frame, Opcode


class FakeSink:
    """``wire.FrameSink``: records each write; ``ready`` can be turned off (a full socket)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.open = asyncio.Event()
        self.open.set()

    def ready(self) -> bool:
        return self.open.is_set()

    def write(self, data: bytes) -> None:
        assert self.ready(), "written while not ready"
        self.writes.append(data)

    async def wait_ready(self) -> None:
        await self.open.wait()

    def texts(self) -> list[str]:
        return [f.data.decode() for f in parse_frames(b"".join(self.writes))]


def parse_frames(data: bytes) -> list[Frame]:
    """Server frames as a client parses them (websockets' parser, unmasked)."""
    pos = 0

    def read_exact(n: int) -> Generator[None, None, bytes]:
        nonlocal pos
        if pos + n > len(data):
            raise AssertionError("truncated frame")
        pos += n
        return data[pos - n : pos]
        yield  # a generator, as the parser expects

    out = []
    while pos < len(data):
        gen = Frame.parse(read_exact, mask=False)
        try:
            next(gen)
        except StopIteration as stop:
            out.append(stop.value)
    return out


def fast_conn(user: str = "u1", max_frames: int = 1000, max_bytes: int = 1_000_000) -> tuple[Connection, FakeSink]:
    sink = FakeSink()
    conn = Connection(FakeTransport(), max_frames, max_bytes, sink)
    conn.user = user
    return conn, sink


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_is_what_a_client_parses(n: int) -> None:
    payload = ("é" * (n // 2) + "x" * (n % 2)).encode()
    frames = parse_frames(text_frame(payload))
    assert len(frames) == 1
    f = frames[0]
    assert (f.opcode, f.fin, f.rsv1, f.data) == (Opcode.TEXT, True, False, payload)


async def test_one_event_goes_as_the_same_bytes_to_every_socket_without_a_writer_task() -> None:
    bus, messages = MemoryBus(), FakeMessages()
    users = [f"u{i}" for i in range(5)]
    messages.convs = {u: [("c1", 0, "member")] for u in users}
    hub = Hub(bus, messages, gap_fill_after=0.01, gap_give_up=5.0)
    conns = []
    for u in users:
        conn, sink = fast_conn(u)
        await hub.attach(conn)
        conns.append((conn, sink))  # no writer task is started for any of them
    ev = event("c1", 1, body="once")
    await bus.publish(subjects.evt_conv("c1"), orjson.dumps(ev))
    await eventually(lambda: all(s.writes for _, s in conns))
    first = conns[0][1].writes[0]
    for _, sink in conns:
        assert len(sink.writes) == 1 and sink.writes[0] is first  # one bytes object for all
        assert [orjson.loads(t) for t in sink.texts()] == [{"type": "event", "event": ev}]
    for conn, _ in conns:
        assert conn.info()["queued"] == 0 and (conn._live_n, conn._live_bytes) == (0, 0)
    await bus.close()


async def test_frames_of_one_loop_iteration_go_in_one_write_in_order() -> None:
    conn, sink = fast_conn()
    conn.start_live("c1", 0)
    for s in (1, 2, 3):
        conn.push_event("c1", s, event_frame(event("c1", s)))
    conn.push_live('{"type":"typing"}', droppable=True)
    assert sink.writes == [] and conn._live_n == 4  # batched, counted until written
    await settle(2)
    assert len(sink.writes) == 1
    assert sink.texts() == [*(event_frame(event("c1", s)) for s in (1, 2, 3)), '{"type":"typing"}']
    assert (conn._live_n, conn._live_bytes) == (0, 0)


async def test_a_socket_that_cannot_take_more_queues_and_keeps_the_bound() -> None:
    conn, sink = fast_conn(max_frames=3)
    writer = asyncio.create_task(conn.writer())
    conn.start_live("c1", 0)
    sink.open.clear()  # the peer stopped reading: the socket's buffer is full
    conn.push_event("c1", 1, event_frame(event("c1", 1)))
    await settle()
    assert sink.writes == [] and conn.info()["queued"] == 1  # moved from the batch to the queue
    conn.push_event("c1", 2, event_frame(event("c1", 2)))  # queued behind it, not batched
    conn.push_event("c1", 3, event_frame(event("c1", 3)))
    assert conn._close is None and conn.info()["queued"] == 3
    conn.push_event("c1", 4, event_frame(event("c1", 4)))  # does not fit: 4009 behind the queue
    assert conn._close == (CLOSE_SLOW_CONSUMER, "slow consumer")
    sink.open.set()
    await eventually(lambda: conn.ws.closed)  # type: ignore[attr-defined]
    assert len(sink.writes) == 1  # the three queued frames in one write
    assert sink.texts() == [event_frame(event("c1", s)) for s in (1, 2, 3)]
    assert conn.ws.close_code == CLOSE_SLOW_CONSUMER  # type: ignore[attr-defined]
    await asyncio.wait_for(writer, 2)


async def test_the_fast_path_resumes_once_the_queue_is_written() -> None:
    conn, sink = fast_conn()
    writer = asyncio.create_task(conn.writer())
    conn.start_live("c1", 0)
    await conn.push_reply('{"type":"pong"}')  # queued: the writer task writes it
    conn.push_event("c1", 1, event_frame(event("c1", 1)))  # behind the reply: queued too
    assert conn.info()["queued"] == 2 and conn._batch == []
    await eventually(lambda: conn.info()["queued"] == 0)
    conn.push_event("c1", 2, event_frame(event("c1", 2)))  # nothing ahead: batched
    assert conn._batch and not conn._q
    await eventually(lambda: len(sink.texts()) == 3)
    assert sink.texts() == ['{"type":"pong"}', event_frame(event("c1", 1)), event_frame(event("c1", 2))]
    writer.cancel()


async def test_a_batch_is_written_before_a_later_close() -> None:
    conn, sink = fast_conn()
    writer = asyncio.create_task(conn.writer())
    conn.start_live("c1", 0)
    conn.push_event("c1", 1, event_frame(event("c1", 1)))
    conn.close_after_queue(1000, "bye")
    conn.push_event("c1", 2, event_frame(event("c1", 2)))  # after the close: not sent
    await asyncio.wait_for(writer, 2)
    assert sink.texts() == [event_frame(event("c1", 1))]
    assert conn.ws.close_code == 1000  # type: ignore[attr-defined]


async def test_close_now_drops_the_batch() -> None:
    conn, sink = fast_conn()
    conn.start_live("c1", 0)
    conn.push_event("c1", 1, event_frame(event("c1", 1)))
    conn.close_now(4001, "unauthorized")
    await settle()
    assert sink.writes == []


def test_out_frame_counts_like_its_text() -> None:
    f = OutFrame('{"type":"event"}')
    assert len(f) == len(f.text) and f.wire is f.wire


# --- the sink over uvicorn's protocol (ws_protocol.py) -----------------------------------------
class _Transport:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def is_closing(self) -> bool:
        return self.closing


def _proto(**kw: object) -> SimpleNamespace:
    state: dict[str, object] = {
        "handshake_complete": True,
        "close_sent": False,
        "disconnected": False,
        "initial_response": None,
        "writable": asyncio.Event(),
        "transport": _Transport(),
    }
    state.update(kw)
    p = SimpleNamespace(**state)
    p.writable.set()
    return p


@pytest.mark.parametrize(
    ("change", "ready"),
    [
        ({}, True),
        ({"handshake_complete": False}, False),  # not accepted yet
        ({"close_sent": True}, False),  # the app closed: nothing after the close frame
        ({"disconnected": True}, False),
        ({"initial_response": (403, [], b"")}, False),  # answered over HTTP instead
    ],
)
def test_the_protocol_sink_takes_frames_only_on_an_open_connection(change: dict[str, object], ready: bool) -> None:
    sink = ProtocolSink(_proto(**change))  # type: ignore[arg-type]
    assert sink.ready() is ready


def test_the_protocol_sink_is_not_ready_above_high_water_or_when_closing() -> None:
    p = _proto()
    sink = ProtocolSink(p)  # type: ignore[arg-type]
    sink.write(b"x")
    assert p.transport.data == [b"x"]
    p.writable.clear()  # uvicorn's pause_writing()
    assert not sink.ready()
    p.writable.set()
    p.transport.closing = True
    assert not sink.ready()


def test_frame_sink_comes_from_the_scope_extension() -> None:
    sink = ProtocolSink(_proto())  # type: ignore[arg-type]
    assert frame_sink({"extensions": {SINK_EXTENSION: {"sink": sink}}}) is sink
    assert frame_sink({"extensions": {"websocket.http.response": {}}}) is None
    assert frame_sink({}) is None
