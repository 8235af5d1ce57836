"""Small asyncio helpers the bench scripts share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def gather_limited(n: int, coros: list[Awaitable[Any]]) -> list[Any]:
    """``asyncio.gather`` of ``coros`` with at most ``n`` running at once, results in order."""
    sem = asyncio.Semaphore(n)

    async def one(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))
