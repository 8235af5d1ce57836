"""sync.fetch: many conversations in few calls, each call within the connection's replay
memory; per-conversation caps, continuation after a byte cut, truncation when the memory
is spent. The messages service is a fake that follows the ``svc.messages.sync`` contract."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from chat_gateway.sync import fetch
from chat_gateway.sync_budget import EVENT_RESERVE, SyncBudget, SyncTicket
from chat_proto.messages_api import SYNC_CONVS_PER_CALL
from chat_proto.replies import SyncReply


class FakeMessages:
    """``logs[conv]`` is the conversation's events; ``member`` the caller's conversations."""

    def __init__(self, logs: dict[str, int], body: int = 100, member: set[str] | None = None) -> None:
        self.logs = {c: [self.event(c, s, body) for s in range(1, n + 1)] for c, n in logs.items()}
        self.member = member if member is not None else set(logs)
        self.calls: list[tuple[int, int, int]] = []  # (conversations, per_conv, max_bytes)

    @staticmethod
    def event(conv: str, seq: int, body: int) -> dict[str, Any]:
        return {"conv": conv, "seq": seq, "kind": "message", "sender": "u", "ts": "t", "body": "x" * body}

    async def __call__(self, positions: list[tuple[str, int]], per_conv: int, max_bytes: int) -> SyncReply:
        return SyncReply.model_validate(self.answer(positions, per_conv, max_bytes))

    def answer(self, positions: list[tuple[str, int]], per_conv: int, max_bytes: int) -> dict[str, Any]:
        assert len(positions) <= SYNC_CONVS_PER_CALL and max_bytes >= EVENT_RESERVE
        self.calls.append((len(positions), per_conv, max_bytes))
        out: list[dict[str, Any]] = []
        left = max_bytes
        todo = [(c, a) for c, a in positions if c in self.member]
        for i, (conv, after) in enumerate(todo):
            evs = [e for e in self.logs[conv] if e["seq"] > after]
            page, more = evs[:per_conv], len(evs) > per_conv
            taken = []
            for e in page:
                size = len(orjson.dumps(e)) + 1
                if size > left:
                    more = True
                    break
                left -= size
                taken.append(e)
            out.append({"conv": conv, "events": taken, "has_more": more})
            if len(taken) < len(page):
                return {"convs": out, "not_found": [], "rest": [c for c, _ in todo[i + 1 :]]} | self._nf(positions)
        return {"convs": out, "rest": []} | self._nf(positions)

    def _nf(self, positions: list[tuple[str, int]]) -> dict[str, Any]:
        return {"not_found": [c for c, _ in positions if c not in self.member]}


def seqs(evs: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in evs]


async def test_a_thousand_conversations_take_ten_calls() -> None:
    fake = FakeMessages({f"c{i}": 3 for i in range(1000)})
    budget = SyncBudget(8 * 1024 * 1024)
    ticket = SyncTicket(budget)
    replay = await fetch(fake, {f"c{i}": 1 for i in range(1000)}, ticket, 500)
    assert len(fake.calls) == 10
    assert list(replay.events) == [f"c{i}" for i in range(1000)]  # in the order of the positions
    assert all(seqs(evs) == [2, 3] for evs in replay.events.values())
    assert replay.truncated == replay.not_found == []
    assert 0 < ticket.held == 8 * 1024 * 1024 - budget.left  # what the replay holds until released
    ticket.release()
    assert budget.left == 8 * 1024 * 1024


async def test_a_byte_cut_continues_where_it_stopped() -> None:
    fake = FakeMessages({"a": 3000, "b": 5, "c": 5}, body=400)
    replay = await fetch(fake, {"a": 0, "b": 0, "c": 2}, SyncTicket(SyncBudget(64 * 1024 * 1024)), 2000)
    assert seqs(replay.events["a"]) == list(range(1, 2001)) and replay.truncated == ["a"]
    assert seqs(replay.events["b"]) == [1, 2, 3, 4, 5] and seqs(replay.events["c"]) == [3, 4, 5]
    assert len(fake.calls) > 2  # 2,000 events of ~500 bytes do not fit one call
    assert all(per_conv <= 2000 for _, per_conv, _ in fake.calls)


async def test_per_conversation_cap_and_not_found() -> None:
    fake = FakeMessages({"big": 700, "small": 4, "theirs": 9}, member={"big", "small"})
    replay = await fetch(fake, {"big": 0, "small": 0, "theirs": 0, "nowhere": 0}, SyncTicket(SyncBudget(10**8)), 500)
    assert seqs(replay.events["big"]) == list(range(1, 501))
    assert replay.truncated == ["big"] and replay.not_found == ["theirs", "nowhere"]
    assert replay.replayed_to("big") == 500 and replay.replayed_to("theirs") == 0


async def test_spent_memory_truncates_the_rest() -> None:
    fake = FakeMessages({f"c{i}": 200 for i in range(6)}, body=1000)
    budget = SyncBudget(256 * 1024)
    replay = await fetch(fake, {f"c{i}": 0 for i in range(6)}, SyncTicket(budget), 500)
    got = [c for c, evs in replay.events.items() if len(evs) == 200]
    assert got and replay.truncated and set(got).isdisjoint(replay.truncated)
    assert set(got) | set(replay.truncated) == {f"c{i}" for i in range(6)}
    assert budget.left >= 0


async def test_a_failed_call_gives_the_reservation_back() -> None:
    budget = SyncBudget(1024 * 1024)

    async def broken(*_: Any) -> SyncReply:
        raise RuntimeError("bus down")

    ticket = SyncTicket(budget)
    with pytest.raises(RuntimeError):
        await fetch(broken, {"a": 0}, ticket, 500)
    assert budget.left == 1024 * 1024 and ticket.held == 0
