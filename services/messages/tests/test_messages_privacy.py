"""Blocks, who may add you to groups, and hiding (privacy.py), on the real store (SQLite)."""

from __future__ import annotations

import pytest
from chat_messages.conversations import Conversations
from chat_messages.privacy import Privacy
from chat_messages.sharing import Sharing
from chat_messages.store import Store
from chat_messages.writer import Writer
from chat_proto.commands import SendCommand
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import AddMember, CreateConversation, PresenceConvs, SharedWith


class Directory:
    def __init__(self, known: set[str]) -> None:
        self.known = known

    async def missing(self, user_ids: list[str]) -> list[str]:
        return [u for u in user_ids if u not in self.known]


@pytest.fixture
def privacy(store: Store) -> Privacy:
    return Privacy(store, Directory({"alice", "bob", "carol", "dave", "erin"}))


async def refused(coro: object) -> ErrorCode:
    with pytest.raises(ChatError) as info:
        await coro  # type: ignore[misc]
    return info.value.code


async def test_a_blocked_user_cannot_reach_the_blocker(convs: Conversations, privacy: Privacy, store: Store) -> None:
    dm = (await convs.create("bob", CreateConversation(kind="dm", members=["alice"])))["conversation"]["id"]
    chan = (await convs.create("bob", CreateConversation(kind="channel", name="mine", private=True)))["conversation"]
    await privacy.block("alice", "bob")
    assert (await privacy.blocks("alice"))["blocks"][0]["user_id"] == "bob"
    # no dm (even the existing one), no adding her anywhere
    assert await refused(convs.create("bob", CreateConversation(kind="dm", members=["alice"]))) == ErrorCode.FORBIDDEN
    assert await refused(convs.create("bob", CreateConversation(kind="group", members=["alice", "carol"]))) == (
        ErrorCode.FORBIDDEN
    )
    assert await refused(convs.add_member("bob", AddMember(conv=chan["id"], user_id="alice"))) == ErrorCode.FORBIDDEN
    # his sends into the existing dm are refused; hers are not (blocks are one-way)
    out = await Writer(store).write_batch(
        [
            SendCommand(conv=dm, sender="bob", client_msg_id="b1", body="hi"),
            SendCommand(conv=dm, sender="alice", client_msg_id="a1", body="go away"),
        ]
    )
    assert out.outcomes[0].error is not None and out.outcomes[0].error.code == ErrorCode.FORBIDDEN
    assert out.outcomes[1].event is not None
    # presence: he does not see hers, and hers is not pushed where he is
    assert (await Sharing(store).shared_with(SharedWith(user_id="bob", user_ids=["alice"])))["user_ids"] == []
    assert (await Sharing(store).shared_with(SharedWith(user_id="alice", user_ids=["bob"])))["user_ids"] == ["bob"]
    assert dm not in (await Sharing(store).presence_convs(PresenceConvs(user_ids=["alice"])))["convs"]["alice"]
    # unblocked: all works again
    await privacy.unblock("alice", "bob")
    assert (await convs.create("bob", CreateConversation(kind="dm", members=["alice"])))["created"] is False


async def test_block_rules(privacy: Privacy) -> None:
    assert await refused(privacy.block("alice", "alice")) == ErrorCode.INVALID
    assert await refused(privacy.block("alice", "nobody")) == ErrorCode.NOT_FOUND
    await privacy.block("alice", "bob")
    await privacy.block("alice", "bob")  # idempotent
    assert [b["user_id"] for b in (await privacy.blocks("alice"))["blocks"]] == ["bob"]


async def test_group_invites_from_people_who_share_a_conversation(convs: Conversations, privacy: Privacy) -> None:
    assert (await privacy.settings("carol")) == {"group_invites": "everyone"}
    await privacy.set_settings("carol", "shared")
    assert (await privacy.settings("carol")) == {"group_invites": "shared"}
    group = CreateConversation(kind="group", members=["carol", "dave"])
    assert await refused(convs.create("alice", group)) == ErrorCode.FORBIDDEN  # a stranger to carol
    await convs.create("alice", CreateConversation(kind="dm", members=["carol"]))
    assert (await convs.create("alice", group))["created"] is True  # now they share one
    # channels are not groups: anyone who may invite can add her
    chan = (await convs.create("erin", CreateConversation(kind="channel", name="open")))["conversation"]["id"]
    assert (await convs.add_member("erin", AddMember(conv=chan, user_id="carol")))["changed"] is True


async def test_hiding_lasts_until_the_next_event(convs: Conversations, privacy: Privacy, store: Store) -> None:
    dm = (await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"]
    await privacy.hide("alice", dm)
    assert dm not in [c["id"] for c in (await convs.list_for("alice"))["conversations"]]
    assert dm in [c["id"] for c in (await convs.list_for("bob"))["conversations"]]  # per user
    await Writer(store).write_batch([SendCommand(conv=dm, sender="bob", client_msg_id="x", body="hello?")])
    assert dm in [c["id"] for c in (await convs.list_for("alice"))["conversations"]]
    assert await refused(privacy.hide("carol", dm)) == ErrorCode.NOT_FOUND
