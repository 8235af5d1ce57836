"""The memory a connection's ``sync`` replays may hold: events are fetched before any is
queued (they are filtered as they are queued), so without a bound one connection could
hold ``1000 conversations x 500 events`` at once.

Each call's bytes are reserved before it is made (the messages service returns at most
that much event JSON), then settled at the real size; the bytes are given back once the
replay is queued (or failed). A sync that finds too little left lists the remaining
conversations in ``truncated`` (the client pages them with ``GET …/messages?after=``).
"""

from __future__ import annotations

# Worst case of one event's JSON: 4,000 code points of up to 4 UTF-8 bytes, plus members.
# A call is only made with at least this much reserved, so it always makes progress.
EVENT_RESERVE = 18 * 1024


class SyncBudget:
    def __init__(self, max_bytes: int) -> None:
        self.left = max_bytes


class SyncTicket:
    """What one sync holds of its connection's budget."""

    def __init__(self, budget: SyncBudget) -> None:
        self.budget = budget
        self.held = 0

    def reserve(self, max_bytes: int) -> int:
        """Bytes the next call may bring (0: the budget is spent)."""
        n = max(0, min(max_bytes, self.budget.left))
        self.budget.left -= n
        self.held += n
        return n

    def settle(self, reserved: int, actual_bytes: int) -> None:
        """The call for which ``reserved`` bytes were set aside brought ``actual_bytes``."""
        delta = reserved - actual_bytes
        self.budget.left += delta
        self.held -= delta

    def release(self) -> None:
        self.budget.left += self.held
        self.held = 0
