from __future__ import annotations

from typing import Any

import pytest
from chat_messages.conversations import Conversations
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import AddMember, CreateConversation, HistoryQuery, MemberRef, SetRole


async def test_dm_is_unique_per_pair(convs: Conversations) -> None:
    a = await convs.create("alice", CreateConversation(kind="dm", members=["bob"]))
    b = await convs.create("bob", CreateConversation(kind="dm", members=["alice", "bob"]))
    assert a["created"] and not b["created"]
    assert a["conversation"]["id"] == b["conversation"]["id"]
    assert a["conversation"]["role"] == "member" and a["conversation"]["private"] is True


async def test_create_appends_member_joined_per_member_and_notifies(convs: Conversations, publisher: Any) -> None:
    out = await convs.create("alice", CreateConversation(kind="group", members=["bob", "carol", "bob"]))
    assert [(e.seq, e.kind, e.user_id) for e in publisher.events] == [
        (1, "member_joined", "alice"),
        (2, "member_joined", "bob"),
        (3, "member_joined", "carol"),
    ]
    assert sorted(u for u, _ in publisher.notices) == ["alice", "bob", "carol"]
    assert out["conversation"]["last_seq"] == 3 and out["conversation"]["name"] is None


@pytest.mark.parametrize(
    "req",
    [
        CreateConversation(kind="dm", members=[]),
        CreateConversation(kind="dm", members=["bob", "carol"]),
        CreateConversation(kind="group", members=[]),
        CreateConversation(kind="channel", name="  \x00 "),
        CreateConversation(kind="dm", members=["mallory"]),
    ],
)
async def test_invalid_creations(convs: Conversations, req: CreateConversation) -> None:
    with pytest.raises(ChatError) as exc:
        await convs.create("alice", req)
    assert exc.value.code == ErrorCode.INVALID


async def test_private_conversations_are_hidden_from_non_members(convs: Conversations) -> None:
    conv = (await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"]
    for call in (
        convs.get("carol", conv),
        convs.history("carol", HistoryQuery(conv=conv)),
        convs.join("carol", conv),
        convs.add_member("carol", AddMember(conv=conv, user_id="carol")),
    ):
        with pytest.raises(ChatError) as exc:
            await call
        assert exc.value.code == ErrorCode.NOT_FOUND


async def test_public_channel_join_and_read(convs: Conversations, publisher: Any) -> None:
    chan = (await convs.create("alice", CreateConversation(kind="channel", name="general")))["conversation"]["id"]
    assert (await convs.get("bob", chan))["role"] is None
    assert (await convs.history("bob", HistoryQuery(conv=chan)))["events"][0]["kind"] == "member_joined"
    with pytest.raises(ChatError) as exc:
        await convs.history("bob", HistoryQuery(conv=chan, members_only=True))
    assert exc.value.code == ErrorCode.NOT_FOUND
    first = await convs.join("bob", chan)
    again = await convs.join("bob", chan)
    assert first["changed"] and not again["changed"]
    assert [e.kind for e in publisher.events].count("member_joined") == 2


async def test_last_owner_cannot_leave_until_transfer(convs: Conversations) -> None:
    chan = (await convs.create("alice", CreateConversation(kind="channel", name="c", members=["bob"])))["conversation"][
        "id"
    ]
    with pytest.raises(ChatError) as exc:
        await convs.remove_member("alice", MemberRef(conv=chan, user_id="alice"))
    assert exc.value.code == ErrorCode.CONFLICT
    await convs.set_role("alice", SetRole(conv=chan, user_id="bob", role="owner"))
    roles = {m["user_id"]: m["role"] for m in (await convs.get("bob", chan))["members"]}
    assert roles == {"alice": "admin", "bob": "owner"}
    await convs.remove_member("alice", MemberRef(conv=chan, user_id="alice"))
    assert [c["id"] for c in (await convs.list_for("alice"))["conversations"]] == []


async def test_history_paging(convs: Conversations, store) -> None:  # type: ignore[no-untyped-def]
    from chat_messages.writer import Writer
    from chat_proto.commands import SendCommand

    conv = (await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"]
    await Writer(store).write_batch(
        [SendCommand(conv=conv, sender="alice", client_msg_id=str(i), body=str(i)) for i in range(10)]
    )  # seqs 3..12
    page = await convs.history("alice", HistoryQuery(conv=conv, limit=3))
    assert [e["seq"] for e in page["events"]] == [10, 11, 12] and page["has_more"]
    page = await convs.history("alice", HistoryQuery(conv=conv, before=10, limit=3))
    assert [e["seq"] for e in page["events"]] == [7, 8, 9] and page["has_more"]
    page = await convs.history("alice", HistoryQuery(conv=conv, after=9, limit=5))
    assert [e["seq"] for e in page["events"]] == [10, 11, 12] and not page["has_more"]
    page = await convs.history("alice", HistoryQuery(conv=conv, after=2, before=6, limit=50))
    assert [e["seq"] for e in page["events"]] == [3, 4, 5] and not page["has_more"]
