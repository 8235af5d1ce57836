"""The gateway (``python -m chat_gateway``) with a memory probe, for bench/idle.py --profile.

Started in place of the gateway's module (``PYTHONPATH`` = bench/), it runs the same
``chat_gateway.__main__.main()`` with ``tracemalloc`` on from the moment the server has
started (so before any connection; frames kept per allocation: ``IDLE_PROBE_FRAMES``,
default 12), and on ``SIGUSR1`` writes into
``IDLE_PROBE_DIR``, as ``<k>.snap`` / ``<k>.json`` (k = 0, 1, …):
- a tracemalloc snapshot (``Snapshot.dump``), for ``compare_to`` between two of them;
- the live objects that the garbage collector tracks, counted by type, and the asyncio
  tasks by the name of their coroutine.
Nothing in the gateway changes; the probe only costs memory and time (tracemalloc roughly
doubles both), so bench/idle.py never reports its RSS as a result. Loopback only, as the
gateway it starts.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from chat_gateway import __main__ as gateway_main

OUT = Path(os.environ.get("IDLE_PROBE_DIR", "."))
_count = 0


def dump() -> None:
    global _count
    k, _count = _count, _count + 1
    gc.collect()
    types = Counter(type(o).__qualname__ for o in gc.get_objects())
    tasks = Counter(t.get_coro().__qualname__ for t in asyncio.all_tasks())  # type: ignore[union-attr]
    snap = tracemalloc.take_snapshot()
    snap.dump(str(OUT / f"{k}.snap"))
    info: dict[str, Any] = {
        "types": dict(types),
        "tasks": dict(tasks),
        "traced": tracemalloc.get_traced_memory()[0],
        "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
    }
    (OUT / f"{k}.json").write_text(json.dumps(info))
    (OUT / f"{k}.done").touch()


_startup = gateway_main.DrainingServer.startup


async def startup(self: Any, sockets: Any = None) -> None:
    await _startup(self, sockets)
    tracemalloc.start(int(os.environ.get("IDLE_PROBE_FRAMES", "12")))
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)


gateway_main.DrainingServer.startup = startup  # type: ignore[method-assign]

if __name__ == "__main__":
    gateway_main.main()
