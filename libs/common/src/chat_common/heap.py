"""The garbage collector of a long-running service process.

CPython's full (generation 2) collection walks every object the collector tracks. A
service process right after start-up holds ~120,000-150,000 of them (modules, FastAPI
routes, pydantic schemas), and a full collection then took ~100 ms on the 2-core box. It
comes whenever enough objects have survived the younger generations, i.e. under load: in
bench/history.py a gateway ran 23 of them while serving 200 syncs (2.0 s of pauses, up to
117 ms each), the messages service 9 (0.8 s), and they were the tail of the sync latency.

``freeze_startup_heap()`` at the end of start-up moves everything alive then to the
permanent generation, which collections never walk (those objects live as long as the
process anyway); what the process allocates while serving is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    gc.collect()  # start-up's own cyclic garbage first: frozen objects are never collected
    gc.freeze()
