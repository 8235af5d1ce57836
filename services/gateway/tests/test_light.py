"""``light.Flag`` and ``light.Queue`` behave as ``asyncio.Event`` and ``asyncio.Queue``
where the gateway uses them, and hold no deque while idle; ``DirectWebSocket`` sends
``/ws`` straight to its endpoint and everything else on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from chat_gateway.light import Flag, Queue
from chat_gateway.ws_protocol import DirectWebSocket
from starlette.websockets import WebSocket


async def settle(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_flag_set_wakes_every_waiter_and_clear_does_not_take_it_back() -> None:
    f = Flag()
    assert not f.is_set()
    waiters = [asyncio.create_task(f.wait()) for _ in range(3)]
    await settle()
    assert not any(w.done() for w in waiters)
    f.set()
    f.clear()  # already woken: they still return
    await settle()
    assert [w.result() for w in waiters] == [True] * 3
    assert not f.is_set()
    late = asyncio.create_task(f.wait())
    await settle()
    assert not late.done()  # cleared: waits again
    f.set()
    assert await late is True
    assert await f.wait() is True  # set: returns at once


async def test_a_cancelled_flag_waiter_is_forgotten() -> None:
    f = Flag()
    w = asyncio.create_task(f.wait())
    await settle()
    w.cancel()
    with pytest.raises(asyncio.CancelledError):
        await w
    assert not f._waiters
    f.set()


async def test_queue_is_fifo_and_allocates_nothing_while_empty() -> None:
    q: Queue[int] = Queue()
    assert q.empty() and q._items is None and q._getters is None
    getter = asyncio.create_task(q.get())
    await settle()
    q.put_nowait(1)
    q.put_nowait(2)
    assert await getter == 1
    assert q.qsize() == 1 and q.get_nowait() == 2
    assert q._items is None  # emptied: the deque is let go
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


async def test_a_full_queue_makes_put_wait_and_put_nowait_raise() -> None:
    q: Queue[str] = Queue(2)
    await q.put("a")
    await q.put("b")
    assert q.full()
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait("x")
    putter = asyncio.create_task(q.put("c"))
    await settle()
    assert not putter.done()
    assert await q.get() == "a"
    await asyncio.wait_for(putter, 1)
    assert [q.get_nowait() for _ in range(2)] == ["b", "c"]


async def test_a_getter_cancelled_after_its_wake_up_passes_the_item_on() -> None:
    q: Queue[int] = Queue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await settle()
    q.put_nowait(7)  # wakes the first getter ...
    first.cancel()  # ... which is cancelled before it runs: the second gets the item
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == 7


async def test_a_getter_cancelled_while_waiting_is_forgotten() -> None:
    q: Queue[int] = Queue()
    g = asyncio.create_task(q.get())
    await settle()
    g.cancel()
    with pytest.raises(asyncio.CancelledError):
        await g
    assert not q._getters
    q.put_nowait(1)
    assert q.get_nowait() == 1


async def test_direct_websocket_takes_only_its_path() -> None:
    seen: list[str] = []

    async def endpoint(ws: WebSocket) -> None:
        seen.append("endpoint " + ws.url.path)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(f"app {scope['type']} {scope['path']}")

    mw = DirectWebSocket(app, path="/ws", endpoint=endpoint)

    async def nothing() -> Any:
        return {}

    async def drop(_: Any) -> None:
        return None

    base = {"headers": [], "query_string": b"", "root_path": "", "server": ("127.0.0.1", 80), "scheme": "ws"}
    await mw({**base, "type": "websocket", "path": "/ws"}, nothing, drop)
    await mw({**base, "type": "websocket", "path": "/ws/"}, nothing, drop)
    await mw({**base, "type": "http", "path": "/ws", "method": "GET", "scheme": "http"}, nothing, drop)
    assert seen == ["endpoint /ws", "app websocket /ws/", "app http /ws"]
