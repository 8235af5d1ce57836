"""The memory a connection's ``sync`` replays may hold: events are fetched before any is
queued (they are filtered as they are queued), so without a bound one connection could
hold ``1000 conversations x 500 events`` at once, times its syncs in flight.

Each page of history is reserved at the largest size an event can take before it is
fetched, then settled at its real size; the bytes are given back once the replay is
queued (or failed). A sync that finds nothing left lists the remaining conversations in
``truncated`` (the client pages them with ``GET …/messages?after=``).
"""

from __future__ import annotations

# Worst case of one event's JSON: 4,000 code points of up to 4 UTF-8 bytes, plus members.
EVENT_RESERVE = 18 * 1024


class SyncBudget:
    def __init__(self, max_bytes: int) -> None:
        self.left = max_bytes


class SyncTicket:
    """What one sync holds of its connection's budget."""

    def __init__(self, budget: SyncBudget) -> None:
        self.budget = budget
        self.held = 0

    def reserve(self, max_events: int) -> int:
        """How many events the next page may have (0: the budget is spent)."""
        n = max(0, min(max_events, self.budget.left // EVENT_RESERVE))
        self.budget.left -= n * EVENT_RESERVE
        self.held += n * EVENT_RESERVE
        return n

    def settle(self, reserved: int, actual_bytes: int) -> None:
        """The page of ``reserved`` events turned out to take ``actual_bytes``."""
        delta = reserved * EVENT_RESERVE - actual_bytes
        self.budget.left += delta
        self.held -= delta

    def release(self) -> None:
        self.budget.left += self.held
        self.held = 0
