"""Receipts: monotonic watermarks, clamped to last_seq, read implies delivered, non-members
ignored, one frame per changed row; REST set/list rules."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from chat_messages import receipts as R
from chat_messages.channels import Channels
from chat_messages.conversations import Conversations
from chat_messages.receipts import Receipts
from chat_messages.store import Watermarks
from chat_messages.writer import Writer
from chat_proto.commands import SendCommand
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import (
    AddMember,
    CreateConversation,
    ReceiptUpdate,
    SetArchived,
    SetReceipt,
)


class Frames:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, object]]] = []

    async def publish_ephemeral(self, conv: str, frame: bytes) -> None:
        self.sent.append((conv, orjson.loads(frame)))


@pytest.fixture
def frames() -> Frames:
    return Frames()


@pytest.fixture
def receipts(convs: Conversations, frames: Frames) -> Receipts:
    return Receipts(convs, frames)


def up(conv: str, user: str, d: int | None = None, r: int | None = None) -> ReceiptUpdate:
    return ReceiptUpdate(conv=conv, user_id=user, delivered_seq=d, read_seq=r)


async def group_with_messages(convs: Conversations, n: int = 5) -> str:
    """alice (owner), bob, carol; seqs 1..3 member_joined, then n messages (last_seq 3 + n)."""
    out = await convs.create("alice", CreateConversation(kind="group", members=["bob", "carol"]))
    conv = str(out["conversation"]["id"])
    cmds = [SendCommand(conv=conv, sender="alice", client_msg_id=f"m{i}", body="hi") for i in range(n)]
    await Writer(convs.store).write_batch(cmds)
    return conv


async def mine(convs: Conversations, user: str, conv: str) -> tuple[int, int, int]:
    view = next(c for c in (await convs.list_for(user))["conversations"] if c["id"] == conv)
    return view["delivered_seq"], view["read_seq"], view["unread"]


def test_advance_rules() -> None:
    cur = Watermarks(delivered=3, read=2, last_seq=10)
    assert R.advance(cur, 5, None) == (5, 2)
    assert R.advance(cur, None, 4) == (4, 4)  # read implies delivered
    assert R.advance(cur, None, 1) is None  # lower: nothing
    assert R.advance(cur, 2, 2) is None
    assert R.advance(cur, 99, 50) == (10, 10)  # clamped to last_seq
    assert R.advance(cur, 7, 3) == (7, 3)


def test_merge_keeps_the_highest_per_user_and_conversation() -> None:
    got = R.merge([up("c", "u", d=3), up("c", "u", r=2), up("c", "u", d=1, r=5), up("c", "v", d=1)])
    assert got == {("c", "u"): (3, 5), ("c", "v"): (1, None)}


async def test_watermarks_move_up_only_and_frames_only_for_changes(
    convs: Conversations, receipts: Receipts, frames: Frames
) -> None:
    conv = await group_with_messages(convs)  # last_seq 8
    out = await receipts.apply([up(conv, "bob", d=6), up(conv, "bob", r=4)])
    assert [f.model_dump() for f in out] == [
        {"type": "receipt", "conv": conv, "user_id": "bob", "delivered_seq": 6, "read_seq": 4}
    ]
    assert frames.sent == [(conv, out[0].model_dump())]
    assert await mine(convs, "bob", conv) == (6, 4, 4)
    # lower values change nothing and send nothing
    assert await receipts.apply([up(conv, "bob", d=5, r=3)]) == []
    assert len(frames.sent) == 1
    # read implies delivered; values beyond last_seq are clamped
    await receipts.apply([up(conv, "bob", r=7)])
    assert await mine(convs, "bob", conv) == (7, 7, 1)
    await receipts.apply([up(conv, "bob", d=1000, r=1000)])
    assert await mine(convs, "bob", conv) == (8, 8, 0)
    assert [f["read_seq"] for _, f in frames.sent] == [4, 7, 8]


async def test_non_members_and_unknown_conversations_are_ignored_silently(
    convs: Conversations, receipts: Receipts, frames: Frames
) -> None:
    conv = await group_with_messages(convs)
    out = await receipts.apply([up(conv, "dave", r=5), up("nosuchconv", "bob", r=1), up(conv, "carol", d=2)])
    assert [(f.user_id, f.delivered_seq, f.read_seq) for f in out] == [("carol", 2, 0)]
    assert [c for c, _ in frames.sent] == [conv]


async def test_guests_report_receipts_also_while_archived(convs: Conversations, receipts: Receipts) -> None:
    chan = (await convs.create("alice", CreateConversation(kind="channel", name="news")))["conversation"]["id"]
    await convs.add_member("alice", AddMember(conv=chan, user_id="erin", role="guest"))
    await Channels(convs).set_archived("alice", SetArchived(conv=chan, archived=True))
    out = await receipts.apply([up(chan, "erin", r=2)])
    assert [(f.user_id, f.delivered_seq, f.read_seq) for f in out] == [("erin", 2, 2)]


async def test_concurrent_batches_never_lower_a_watermark(convs: Conversations, receipts: Receipts) -> None:
    conv = await group_with_messages(convs, n=30)
    await asyncio.gather(*(receipts.apply([up(conv, "bob", d=s, r=s - 1)]) for s in range(2, 34)))
    assert await mine(convs, "bob", conv) == (33, 32, 1)


async def test_rest_set_and_list(convs: Conversations, receipts: Receipts) -> None:
    conv = await group_with_messages(convs)
    assert await receipts.set_own("bob", SetReceipt(conv=conv, read_seq=5)) == {"changed": True}
    assert await receipts.set_own("bob", SetReceipt(conv=conv, delivered_seq=2)) == {"changed": False}
    listed = await receipts.list_for("carol", conv)
    assert listed == {
        "receipts": [
            {"user_id": "alice", "delivered_seq": 0, "read_seq": 0},
            {"user_id": "bob", "delivered_seq": 5, "read_seq": 5},
            {"user_id": "carol", "delivered_seq": 0, "read_seq": 0},
        ]
    }
    for call, code in (
        (receipts.set_own("bob", SetReceipt(conv=conv)), ErrorCode.INVALID),
        (receipts.set_own("dave", SetReceipt(conv=conv, read_seq=1)), ErrorCode.NOT_FOUND),
        (receipts.list_for("dave", conv), ErrorCode.NOT_FOUND),
        (receipts.list_for("bob", "nosuchconv"), ErrorCode.NOT_FOUND),
    ):
        with pytest.raises(ChatError) as exc:
            await call
        assert exc.value.code == code
    # public channels: anyone may read the receipts; a non-member may not set any (403)
    chan = (await convs.create("alice", CreateConversation(kind="channel", name="pub")))["conversation"]["id"]
    assert [r["user_id"] for r in (await receipts.list_for("dave", chan))["receipts"]] == ["alice"]
    with pytest.raises(ChatError) as exc:
        await receipts.set_own("dave", SetReceipt(conv=chan, read_seq=1))
    assert exc.value.code == ErrorCode.FORBIDDEN
