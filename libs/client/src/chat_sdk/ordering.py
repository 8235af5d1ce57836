"""Per-conversation ordering: deliver each ``(conv, seq)`` exactly once, in seq order.

Pure bookkeeping (no I/O, no clock of its own), used by the client's delivery layer:
``offer()`` an event from any source (live, sync replay, REST gap fill) and get back the
events that are now deliverable, in order. Events ahead of a gap are held until the gap is
filled or ``skip_to()`` gives up on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar


class HasSeq(Protocol):
    @property
    def conv(self) -> str: ...

    @property
    def seq(self) -> int: ...


E = TypeVar("E", bound=HasSeq)


class ConvOrder(Generic[E]):
    """One conversation: ``last`` is the highest seq delivered (everything up to it is done)."""

    def __init__(self, last: int = 0) -> None:
        self.last = last
        self.pending: dict[int, E] = {}
        #: when the current gap appeared (the caller's clock), None without a gap
        self.gap_since: float | None = None

    def offer(self, ev: E, now: float = 0.0) -> list[E]:
        """The events deliverable after receiving ``ev`` (empty for a duplicate)."""
        if ev.seq <= self.last or ev.seq in self.pending:
            return []
        if ev.seq != self.last + 1:
            self.pending[ev.seq] = ev
            if self.gap_since is None:
                self.gap_since = now
            return []
        out = [ev]
        self.last = ev.seq
        out.extend(self._drain())
        return out

    def _drain(self) -> list[E]:
        out: list[E] = []
        while (nxt := self.pending.pop(self.last + 1, None)) is not None:
            out.append(nxt)
            self.last = nxt.seq
        if not self.pending:
            self.gap_since = None
        return out

    def gap(self) -> tuple[int, int] | None:
        """``(last, first_held)``: seqs strictly between them are missing; None if no gap."""
        if not self.pending:
            return None
        return self.last, min(self.pending)

    def skip_to(self, seq: int, now: float = 0.0) -> list[E]:
        """Give up on everything below ``seq``: deliver the held events from ``seq`` on.
        A further gap above them starts its own wait at ``now``."""
        if seq - 1 > self.last:
            self.last = seq - 1
            for s in [s for s in self.pending if s <= self.last]:
                del self.pending[s]
        out = self._drain()
        if self.pending:
            self.gap_since = now
        return out


class Sequencer(Generic[E]):
    """All conversations. A conversation not known yet starts at its first event seen
    (e.g. the client's own ``member_joined``)."""

    def __init__(self, positions: dict[str, int] | None = None) -> None:
        self.convs: dict[str, ConvOrder[E]] = {c: ConvOrder(s) for c, s in (positions or {}).items()}
        #: events offered that were already delivered or held (dropped)
        self.duplicates = 0

    def positions(self) -> dict[str, int]:
        """``{conv: last delivered seq}``: what ``sync`` needs after a reconnect."""
        return {c: o.last for c, o in self.convs.items()}

    def known(self, conv: str) -> bool:
        return conv in self.convs

    def start(self, conv: str, last: int) -> None:
        """Track ``conv`` from ``last`` (no-op if already tracked)."""
        self.convs.setdefault(conv, ConvOrder(last))

    def forget(self, conv: str) -> None:
        self.convs.pop(conv, None)

    def offer(self, ev: E, now: float = 0.0) -> list[E]:
        order = self.convs.get(ev.conv)
        if order is None:
            order = self.convs[ev.conv] = ConvOrder(ev.seq - 1)
        if ev.seq <= order.last or ev.seq in order.pending:
            self.duplicates += 1
            return []
        return order.offer(ev, now)

    def offer_all(self, evs: Iterable[E], now: float = 0.0) -> list[E]:
        out: list[E] = []
        for ev in evs:
            out.extend(self.offer(ev, now))
        return out

    def gap(self, conv: str) -> tuple[int, int] | None:
        order = self.convs.get(conv)
        return order.gap() if order else None

    def skip_to(self, conv: str, seq: int, now: float = 0.0) -> list[E]:
        order = self.convs.get(conv)
        return order.skip_to(seq, now) if order else []
