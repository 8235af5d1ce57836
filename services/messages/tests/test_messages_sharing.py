"""Who shares conversations (for presence): visibility and the fanout conversations."""

from __future__ import annotations

from chat_messages.conversations import Conversations
from chat_messages.sharing import Sharing
from chat_messages.store import Store
from chat_proto.messages_api import CreateConversation, PresenceConvs, SharedWith


async def _conv(convs: Conversations, user: str, **kw: object) -> str:
    out = await convs.create(user, CreateConversation(**kw))  # type: ignore[arg-type]
    return str(out["conversation"]["id"])


async def test_shared_with_only_members_of_a_common_conversation(convs: Conversations, store: Store) -> None:
    await _conv(convs, "alice", kind="dm", members=["bob"])
    chan = await _conv(convs, "carol", kind="channel", name="open")
    await convs.join("alice", chan)
    sharing = Sharing(store)
    got = await sharing.shared_with(
        SharedWith(user_id="alice", user_ids=["bob", "carol", "dave", "nobody", "alice", "bob"])
    )
    # dave shares nothing, "nobody" does not exist; the caller counts; order kept, no duplicates
    assert got == {"user_ids": ["bob", "carol", "alice"]}
    assert (await sharing.shared_with(SharedWith(user_id="dave", user_ids=["alice", "dave"]))) == {"user_ids": ["dave"]}


async def test_presence_convs_skip_big_channels_and_notes(convs: Conversations, store: Store) -> None:
    dm = await _conv(convs, "alice", kind="dm", members=["bob"])
    group = await _conv(convs, "alice", kind="group", members=["bob", "carol"])
    small = await _conv(convs, "alice", kind="channel", name="small", members=["bob"])
    big = await _conv(convs, "alice", kind="channel", name="big", members=["bob", "carol", "dave"])
    await _conv(convs, "alice", kind="dm", members=["alice"])  # notes: nobody else to tell
    await _conv(convs, "alice", kind="channel", name="alone")
    got = await Sharing(store).presence_convs(PresenceConvs(user_ids=["alice", "erin"], max_members=3))
    assert got["convs"]["alice"] == sorted([dm, group, small])
    assert got["convs"]["erin"] == []
    assert big not in got["convs"]["alice"]
    got = await Sharing(store).presence_convs(PresenceConvs(user_ids=["alice"], max_members=4))
    assert big in got["convs"]["alice"]


async def test_user_convs_carry_the_role(convs: Conversations) -> None:
    chan = await _conv(convs, "alice", kind="channel", name="roles", members=["bob"])
    got = {c["id"]: c["role"] for c in (await convs.user_convs("bob"))["convs"]}
    assert got == {chan: "member"}
    got = {c["id"]: c["role"] for c in (await convs.user_convs("alice"))["convs"]}
    assert got == {chan: "owner"}
