"""Channels: unique names, rename/topic/description, archive, the directory; dms and groups."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from chat_messages.channels import Channels
from chat_messages.conversations import Conversations
from chat_messages.store import Store
from chat_messages.writer import Writer
from chat_proto.commands import SendCommand
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import (
    AddMember,
    ChannelQuery,
    CreateConversation,
    HistoryQuery,
    MemberRef,
    SetArchived,
    SetRole,
    UpdateConversation,
)


async def channel(convs: Conversations, name: str, user: str = "alice", **kw: Any) -> str:
    out = await convs.create(user, CreateConversation(kind="channel", name=name, **kw))
    return str(out["conversation"]["id"])


async def refused(call: Any, code: ErrorCode) -> ChatError:
    with pytest.raises(ChatError) as exc:
        await call
    assert exc.value.code == code, exc.value
    return exc.value


async def test_channel_names_are_unique_case_insensitively(convs: Conversations) -> None:
    await channel(convs, "Town Square")
    for dup in ("town square", "  TOWN\tsquare ", "Town\u00a0Square"):
        await refused(convs.create("bob", CreateConversation(kind="channel", name=dup)), ErrorCode.CONFLICT)
    # private channels share the namespace
    await refused(
        convs.create("bob", CreateConversation(kind="channel", name="TOWN SQUARE", private=True)), ErrorCode.CONFLICT
    )
    other = await convs.create("bob", CreateConversation(kind="channel", name="Town Square 2"))
    assert other["conversation"]["name"] == "Town Square 2"


async def test_concurrent_creates_of_one_name_one_wins(convs: Conversations) -> None:
    results = await asyncio.gather(
        *(convs.create(f"u{i}", CreateConversation(kind="channel", name="race")) for i in range(6)),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, dict)]
    assert len(created) == 1
    assert all(isinstance(r, ChatError) and r.code == ErrorCode.CONFLICT for r in results if r not in created)


async def test_rename_topic_description_append_one_event(
    convs: Conversations, channels: Channels, publisher: Any
) -> None:
    chan = await channel(convs, "general", members=["bob"])
    out = await channels.update(
        "alice", UpdateConversation(conv=chan, name=" Lobby ", topic="hi\x00 there\n", description="d")
    )
    view = out["conversation"]
    assert out["changed"] and (view["name"], view["topic"], view["description"]) == ("Lobby", "hi there", "d")
    ev = publisher.events[-1]
    assert (ev.seq, ev.kind, ev.sender) == (3, "conversation_updated", "alice")
    assert ev.to_wire()["changes"] == {"name": "Lobby", "topic": "hi there", "description": "d"}
    # only what changed; clearing the topic is ""; the same values again: no event
    await channels.update("alice", UpdateConversation(conv=chan, name="Lobby", topic=""))
    assert publisher.events[-1].to_wire()["changes"] == {"topic": ""}
    again = await channels.update("alice", UpdateConversation(conv=chan, name="Lobby", description="d"))
    assert not again["changed"] and again["conversation"]["last_seq"] == 4
    hist = await convs.history("bob", HistoryQuery(conv=chan))
    assert [(e["seq"], e["kind"]) for e in hist["events"]][-2:] == [
        (3, "conversation_updated"),
        (4, "conversation_updated"),
    ]
    assert (await convs.get("bob", chan))["topic"] == ""
    # the old name is free again, the new one taken (also by case)
    await channel(convs, "GENERAL")
    await refused(convs.create("bob", CreateConversation(kind="channel", name="lobby")), ErrorCode.CONFLICT)


async def test_rename_collision_and_limits(convs: Conversations, channels: Channels) -> None:
    a = await channel(convs, "alpha")
    await channel(convs, "beta")
    await refused(channels.update("alice", UpdateConversation(conv=a, name="BETA")), ErrorCode.CONFLICT)
    assert (await convs.get("alice", a))["name"] == "alpha"
    await channels.update("alice", UpdateConversation(conv=a, name="Alpha"))  # own name, other case: fine
    for req in (
        UpdateConversation(conv=a, topic="x" * 251),
        UpdateConversation(conv=a, description="x" * 1001),
        UpdateConversation(conv=a, name=" \x00 "),
        UpdateConversation(conv=a),
    ):
        await refused(channels.update("alice", req), ErrorCode.INVALID)
    assert (await convs.get("alice", a))["last_seq"] == 2


async def test_rename_by_role_and_kind(convs: Conversations, channels: Channels) -> None:
    chan = await channel(convs, "roles", members=["bob", "carol"])
    await convs.set_role("alice", SetRole(conv=chan, user_id="bob", role="admin"))
    await channels.update("bob", UpdateConversation(conv=chan, topic="admins may"))
    await refused(channels.update("carol", UpdateConversation(conv=chan, topic="members may not")), ErrorCode.FORBIDDEN)
    await refused(channels.update("dave", UpdateConversation(conv=chan, topic="outsider")), ErrorCode.FORBIDDEN)
    group = await convs.create("alice", CreateConversation(kind="group", members=["bob"], name="ignored"))
    assert group["conversation"]["name"] is None
    gid = group["conversation"]["id"]
    await refused(channels.update("alice", UpdateConversation(conv=gid, name="named")), ErrorCode.INVALID)
    assert (await channels.update("alice", UpdateConversation(conv=gid, topic="group topic")))["changed"]
    dm = (await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"]
    await refused(channels.update("alice", UpdateConversation(conv=dm, name="x")), ErrorCode.INVALID)
    await refused(channels.update("alice", UpdateConversation(conv=dm, topic="x")), ErrorCode.INVALID)
    await refused(channels.update("carol", UpdateConversation(conv=dm, topic="x")), ErrorCode.NOT_FOUND)


async def test_archive_is_read_only_for_everyone(
    convs: Conversations, channels: Channels, store: Store, publisher: Any
) -> None:
    chan = await channel(convs, "old", members=["bob", "carol"])
    await refused(channels.set_archived("bob", SetArchived(conv=chan, archived=True)), ErrorCode.FORBIDDEN)
    out = await channels.set_archived("alice", SetArchived(conv=chan, archived=True))
    assert out["changed"] and out["conversation"]["archived"] is True
    assert publisher.events[-1].to_wire()["changes"] == {"archived": True}
    again = await channels.set_archived("alice", SetArchived(conv=chan, archived=True))
    assert not again["changed"]
    res = await Writer(store).write_batch(
        [SendCommand(conv=chan, sender=u, client_msg_id="m", body="hi") for u in ("alice", "bob")]
    )
    for o in res.outcomes:
        assert o.error is not None and o.error.code == ErrorCode.FORBIDDEN and "archived" in o.error.message
    assert res.new_events == []
    refusals = (
        convs.join("dave", chan),
        convs.add_member("alice", AddMember(conv=chan, user_id="dave")),
        convs.remove_member("alice", MemberRef(conv=chan, user_id="bob")),
        convs.set_role("alice", SetRole(conv=chan, user_id="bob", role="admin")),
        channels.update("alice", UpdateConversation(conv=chan, topic="t")),
    )
    for call in refusals:
        await refused(call, ErrorCode.FORBIDDEN)
    # reading stays, leaving stays
    assert (await convs.history("dave", HistoryQuery(conv=chan)))["events"][-1]["kind"] == "conversation_updated"
    await convs.remove_member("carol", MemberRef(conv=chan, user_id="carol"))
    last = (await convs.get("alice", chan))["last_seq"]
    assert last == 5  # 3 joins, archived, carol left
    # unarchive restores posting
    await channels.set_archived("alice", SetArchived(conv=chan, archived=False))
    res = await Writer(store).write_batch([SendCommand(conv=chan, sender="bob", client_msg_id="m2", body="back")])
    assert res.outcomes[0].event is not None and res.outcomes[0].event.seq == 7


async def test_dms_cannot_be_archived_groups_can(convs: Conversations, channels: Channels) -> None:
    dm = (await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"]
    await refused(channels.set_archived("alice", SetArchived(conv=dm, archived=True)), ErrorCode.INVALID)
    group = (await convs.create("alice", CreateConversation(kind="group", members=["bob"])))["conversation"]["id"]
    assert (await channels.set_archived("alice", SetArchived(conv=group, archived=True)))["changed"]


async def test_directory_lists_public_channels_by_name(convs: Conversations, channels: Channels) -> None:
    names = ["delta", "Alpha", "charlie", "Bravo", "echo", "50%_off", "500 off"]
    ids = {n: await channel(convs, n) for n in names}
    await channel(convs, "alpha secret", private=True)
    await convs.create("alice", CreateConversation(kind="group", members=["bob"]))
    await convs.join("bob", ids["charlie"])
    page = await channels.directory("bob", ChannelQuery(limit=3))
    assert [c["name"] for c in page["channels"]] == ["50%_off", "500 off", "Alpha"]
    seen = [c["name"] for c in page["channels"]]
    while page["next_cursor"]:
        page = await channels.directory("bob", ChannelQuery(limit=3, cursor=page["next_cursor"]))
        seen += [c["name"] for c in page["channels"]]
    assert seen == ["50%_off", "500 off", "Alpha", "Bravo", "charlie", "delta", "echo"]
    full = {c["name"]: c for c in (await channels.directory("bob", ChannelQuery()))["channels"]}
    assert full["charlie"]["role"] == "member" and full["charlie"]["member_count"] == 2
    assert full["delta"]["role"] is None and full["delta"]["member_count"] == 1 and full["delta"]["unread"] >= 0
    assert full["Alpha"]["archived"] is False and full["Alpha"]["private"] is False
    search = await channels.directory("bob", ChannelQuery(q="ALP"))
    assert [c["name"] for c in search["channels"]] == ["Alpha"]  # never the private one
    assert [c["name"] for c in (await channels.directory("bob", ChannelQuery(q="%_")))["channels"]] == ["50%_off"]
    assert [c["name"] for c in (await channels.directory("bob", ChannelQuery(q="0_")))["channels"]] == []
    assert (await channels.directory("bob", ChannelQuery(q="nothing")))["channels"] == []
    await refused(channels.directory("bob", ChannelQuery(cursor="%%%")), ErrorCode.INVALID)


async def test_archived_channels_are_listed_as_archived(convs: Conversations, channels: Channels) -> None:
    chan = await channel(convs, "attic")
    await channels.set_archived("alice", SetArchived(conv=chan, archived=True))
    (listed,) = (await channels.directory("carol", ChannelQuery(q="attic")))["channels"]
    assert listed["id"] == chan and listed["archived"] is True


async def test_self_dm_is_notes(convs: Conversations) -> None:
    first = await convs.create("alice", CreateConversation(kind="dm", members=["alice"]))
    again = await convs.create("alice", CreateConversation(kind="dm", members=["alice"]))
    assert first["created"] and not again["created"]
    assert first["conversation"]["id"] == again["conversation"]["id"]
    members = (await convs.get("alice", first["conversation"]["id"]))["members"]
    assert members == [{"user_id": "alice", "role": "member"}]
    await refused(convs.create("alice", CreateConversation(kind="dm", members=[])), ErrorCode.INVALID)
    other = await convs.create("alice", CreateConversation(kind="dm", members=["bob"]))
    assert other["conversation"]["id"] != first["conversation"]["id"]


async def test_group_sizes(convs: Conversations) -> None:
    await refused(convs.create("alice", CreateConversation(kind="group", members=["alice"])), ErrorCode.INVALID)
    big = [f"u{i}" for i in range(15)]
    full = await convs.create("alice", CreateConversation(kind="group", members=big))
    assert len((await convs.get("alice", full["conversation"]["id"]))["members"]) == 16
    await refused(convs.create("alice", CreateConversation(kind="group", members=[*big, "u15"])), ErrorCode.INVALID)
    gid = full["conversation"]["id"]
    await refused(convs.add_member("alice", AddMember(conv=gid, user_id="bob")), ErrorCode.CONFLICT)
