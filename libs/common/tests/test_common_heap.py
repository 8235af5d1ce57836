"""``chat_common.heap``: what is alive at the end of start-up is frozen (full collections
skip it) after start-up's cyclic garbage was collected."""

from __future__ import annotations

import gc
import weakref

from chat_common.heap import freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_freezes_the_live_heap_after_collecting_its_garbage() -> None:
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    kept = Node()
    try:
        freeze_startup_heap()
        assert gone() is None  # collected before the freeze, not frozen forever
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects(2))  # frozen: no generation walks it
    finally:
        gc.unfreeze()  # the test process goes on as before
    assert any(o is kept for o in gc.get_objects(2))
