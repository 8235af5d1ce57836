"""asyncio's ``Event`` and ``Queue``, without what they allocate up front.

Every idle WebSocket connection holds several of them for its whole life, and most are
never waited on: an ``asyncio.Event`` allocates a deque of waiters (~0.8 KiB) when it is
built, an ``asyncio.Queue`` four deques and an ``Event`` (~3.2 KiB). These hold nothing
until someone waits or something is queued (bench/idle.py: the gateway's memory per idle
connection). Same semantics as asyncio's for what the gateway uses; not thread-safe, as
asyncio's are not.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Waitable(Protocol):
    """What waiting for a one-way signal needs (``Flag``, ``asyncio.Event``)."""

    def is_set(self) -> bool: ...

    async def wait(self) -> bool: ...


def _wake_first(waiters: list[asyncio.Future[None]] | None) -> None:
    while waiters:
        w = waiters.pop(0)
        if not w.done():
            w.set_result(None)
            return


class Flag:
    """``asyncio.Event``: ``set`` wakes every waiter; ``clear`` does not take back a wake-up
    already given."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for w in waiters or ():
            if not w.done():
                w.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        w: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(w)
        try:
            await w
        finally:
            if self._waiters is not None and w in self._waiters:  # cancelled before set()
                self._waiters.remove(w)
        return True

    def __repr__(self) -> str:
        return f"<Flag {'set' if self._set else 'unset'}>"


class Queue(Generic[T]):
    """``asyncio.Queue`` (FIFO, ``maxsize`` 0 = unbounded): ``put`` waits while it is full,
    ``get`` while it is empty; the cancellation of a waiter passes its turn on, as asyncio's
    does. No ``join``/``task_done``."""

    __slots__ = ("_getters", "_items", "_putters", "maxsize")

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._items: deque[T] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._putters: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= self.qsize()

    def put_nowait(self, item: T) -> None:
        if self.full():
            raise asyncio.QueueFull
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        _wake_first(self._getters)

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items:
            self._items = None  # empty again: let the deque go (~0.8 KiB)
        _wake_first(self._putters)
        return item

    async def put(self, item: T) -> None:
        while self.full():
            if self._putters is None:
                self._putters = []
            w: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._putters.append(w)
            try:
                await w
            except BaseException:
                self._cancelled(self._putters, w, self.full)
                raise
        self.put_nowait(item)

    async def get(self) -> T:
        # (the waiting is written out here and in put(), not in a shared coroutine: a
        # getter waits for the connection's whole life, and a coroutine frame costs memory)
        while self.empty():
            if self._getters is None:
                self._getters = []
            w: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(w)
            try:
                await w
            except BaseException:
                self._cancelled(self._getters, w, self.empty)
                raise
        return self.get_nowait()

    @staticmethod
    def _cancelled(waiters: list[asyncio.Future[None]], w: asyncio.Future[None], blocked: Callable[[], bool]) -> None:
        w.cancel()
        if w in waiters:
            waiters.remove(w)
        elif not w.cancelled() and not blocked():
            _wake_first(waiters)  # woken, then cancelled: the next waiter's turn

    def __repr__(self) -> str:
        return f"<Queue {self.qsize()}/{self.maxsize or 'inf'}>"
