"""Edits and deletes (new log events; a deleted message's text gone everywhere) and the
validation of ``reply_to`` in the write path."""

from __future__ import annotations

from typing import Any

import pytest
from chat_messages.channels import Channels
from chat_messages.conversations import Conversations
from chat_messages.edits import Edits
from chat_messages.store import Store
from chat_messages.writer import Writer
from chat_proto.commands import SendCommand
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import (
    AddMember,
    CreateConversation,
    EditMessage,
    HistoryQuery,
    MessageRef,
    SetArchived,
)
from sqlalchemy import text


@pytest.fixture
def edits(convs: Conversations) -> Edits:
    return Edits(convs)


async def refused(call: Any, code: ErrorCode) -> None:
    with pytest.raises(ChatError) as exc:
        await call
    assert exc.value.code == code, exc.value


async def post(store: Store, conv: str, sender: str, body: str = "hello", reply_to: int | None = None) -> Any:
    cmd = SendCommand(conv=conv, sender=sender, client_msg_id=f"{sender}-{body}", body=body, reply_to=reply_to)
    return (await Writer(store).write_batch([cmd])).outcomes[0]


async def room(convs: Conversations) -> str:
    """A channel: alice owner, bob admin, carol member, erin guest (seqs 1..4)."""
    conv = str((await convs.create("alice", CreateConversation(kind="channel", name="room")))["conversation"]["id"])
    for user, role in (("bob", "admin"), ("carol", "member"), ("erin", "guest")):
        await convs.add_member("alice", AddMember(conv=conv, user_id=user, role=role))
    return conv


async def log(convs: Conversations, conv: str) -> list[dict[str, Any]]:
    return list((await convs.history("alice", HistoryQuery(conv=conv, limit=200)))["events"])


async def test_edit_by_the_sender_is_a_new_event(
    convs: Conversations, store: Store, edits: Edits, publisher: Any
) -> None:
    conv = await room(convs)
    msg = (await post(store, conv, "carol", "helo")).event
    ev = await edits.edit("carol", EditMessage(conv=conv, seq=msg.seq, body="  hello  "))
    assert {k: ev[k] for k in ("seq", "kind", "sender", "target", "body")} == {
        "seq": msg.seq + 1,
        "kind": "edit",
        "sender": "carol",
        "target": msg.seq,
        "body": "hello",
    }
    assert publisher.events[-1].to_wire() == ev
    assert (await log(convs, conv))[-1] == ev


async def test_edit_refusals(convs: Conversations, store: Store, edits: Edits) -> None:
    conv = await room(convs)
    carols = (await post(store, conv, "carol")).event.seq

    def edit(user: str, seq: int, body: str = "x") -> Any:
        return edits.edit(user, EditMessage(conv=conv, seq=seq, body=body))

    await refused(edit("bob", carols), ErrorCode.FORBIDDEN)  # another member's (even for an admin)
    await refused(edit("carol", 1), ErrorCode.NOT_FOUND)  # a member_joined, not a message
    await refused(edit("carol", 999), ErrorCode.NOT_FOUND)
    await refused(edit("carol", carols, "   "), ErrorCode.INVALID)
    await refused(edit("carol", carols, "x" * 4001), ErrorCode.TOO_LARGE)
    await refused(edit("dave", carols), ErrorCode.FORBIDDEN)  # not a member of a public channel
    await refused(edit("erin", carols), ErrorCode.FORBIDDEN)  # guests do not post
    edit_ev = await edit("carol", carols)
    await refused(edit("carol", edit_ev["seq"]), ErrorCode.NOT_FOUND)  # an edit is not a message
    await edits.delete("carol", MessageRef(conv=conv, seq=carols))
    await refused(edit("carol", carols), ErrorCode.NOT_FOUND)  # deleted
    dm = (await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"]
    await refused(edits.edit("carol", EditMessage(conv=dm, seq=1, body="x")), ErrorCode.NOT_FOUND)


async def test_delete_erases_the_text_everywhere_and_is_retry_safe(
    convs: Conversations, store: Store, edits: Edits, publisher: Any
) -> None:
    conv = await room(convs)
    seq = (await post(store, conv, "carol", "secret")).event.seq
    edit_seq = (await edits.edit("carol", EditMessage(conv=conv, seq=seq, body="secret 2")))["seq"]
    other = (await post(store, conv, "carol", "stays")).event.seq
    ev = await edits.delete("bob", MessageRef(conv=conv, seq=seq))  # an admin deletes a member's
    assert (ev["kind"], ev["sender"], ev["target"]) == ("delete", "bob", seq)
    assert publisher.events[-1].to_wire() == ev
    by_seq = {e["seq"]: e for e in await log(convs, conv)}
    assert by_seq[seq] == {**by_seq[seq], "kind": "message", "body": None, "deleted": True}
    assert by_seq[seq]["attachments"] is None and by_seq[edit_seq]["attachments"] is None
    assert by_seq[edit_seq]["body"] is None and by_seq[edit_seq]["deleted"] is True
    assert by_seq[other]["body"] == "stays" and "deleted" not in by_seq[other]
    assert by_seq[ev["seq"]] == ev
    # the text is gone from the store itself, not only from what is rendered
    async with store.tx() as conn:
        rows = (await conn.execute(text("SELECT body FROM events WHERE body LIKE 'secret%'"))).all()
    assert rows == []
    n = len(publisher.events)
    again = await edits.delete("carol", MessageRef(conv=conv, seq=seq))
    assert again == ev and len(publisher.events) == n  # the same event, nothing new


async def test_who_may_delete(convs: Conversations, store: Store, edits: Edits) -> None:
    conv = await room(convs)
    alices = (await post(store, conv, "alice", "a")).event.seq
    bobs = (await post(store, conv, "bob", "b")).event.seq
    carols = (await post(store, conv, "carol", "c")).event.seq
    await refused(edits.delete("carol", MessageRef(conv=conv, seq=bobs)), ErrorCode.FORBIDDEN)
    await refused(edits.delete("erin", MessageRef(conv=conv, seq=carols)), ErrorCode.FORBIDDEN)
    await refused(edits.delete("dave", MessageRef(conv=conv, seq=carols)), ErrorCode.FORBIDDEN)
    await refused(edits.delete("carol", MessageRef(conv=conv, seq=2)), ErrorCode.NOT_FOUND)
    assert (await edits.delete("carol", MessageRef(conv=conv, seq=carols)))["sender"] == "carol"
    assert (await edits.delete("bob", MessageRef(conv=conv, seq=alices)))["kind"] == "delete"  # admin+
    assert (await edits.delete("alice", MessageRef(conv=conv, seq=bobs)))["kind"] == "delete"
    # dm: both are members; nobody deletes the other's message; private: non-members 404
    dm = (await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"]
    in_dm = (await post(store, dm, "alice", "x")).event.seq
    await refused(edits.delete("bob", MessageRef(conv=dm, seq=in_dm)), ErrorCode.FORBIDDEN)
    await refused(edits.delete("carol", MessageRef(conv=dm, seq=in_dm)), ErrorCode.NOT_FOUND)


async def test_archived_refuses_edits_and_deletes(convs: Conversations, store: Store, edits: Edits) -> None:
    conv = await room(convs)
    carols = (await post(store, conv, "carol")).event.seq
    await Channels(convs).set_archived("alice", SetArchived(conv=conv, archived=True))
    await refused(edits.edit("carol", EditMessage(conv=conv, seq=carols, body="x")), ErrorCode.FORBIDDEN)
    await refused(edits.delete("carol", MessageRef(conv=conv, seq=carols)), ErrorCode.FORBIDDEN)
    await refused(edits.delete("alice", MessageRef(conv=conv, seq=carols)), ErrorCode.FORBIDDEN)


async def test_reply_to_must_be_a_message_of_the_same_conversation(convs: Conversations, store: Store) -> None:
    conv = await room(convs)
    other = (await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"]
    first = (await post(store, conv, "carol", "first")).event.seq
    in_other = (await post(store, other, "alice", "elsewhere")).event.seq
    cmds = [
        SendCommand(conv=conv, sender="carol", client_msg_id="ok", body="re", reply_to=first),
        SendCommand(conv=conv, sender="carol", client_msg_id="nope", body="re", reply_to=999),
        SendCommand(conv=conv, sender="carol", client_msg_id="member", body="re", reply_to=1),  # member_joined
        SendCommand(conv=conv, sender="carol", client_msg_id="x", body="re", reply_to=in_other + 100),
        SendCommand(conv=other, sender="alice", client_msg_id="y", body="re", reply_to=in_other),
        SendCommand(conv=conv, sender="carol", client_msg_id="plain", body="no reply"),
    ]
    res = await Writer(store).write_batch(cmds)
    codes = [o.error.code if o.error else None for o in res.outcomes]
    assert codes == [None, ErrorCode.INVALID, ErrorCode.INVALID, ErrorCode.INVALID, None, None]
    assert sorted(e.client_msg_id or "" for e in res.new_events) == ["ok", "plain", "y"]
    assert next(e for e in res.new_events if e.client_msg_id == "ok").reply_to == first
    # gap-free: refused replies took no seq
    assert sorted(e.seq for e in res.new_events if e.conv == conv) == [first + 1, first + 2]
    # a deleted message may still be replied to
    await Edits(convs).delete("carol", MessageRef(conv=conv, seq=first))
    again = await post(store, conv, "carol", "late", reply_to=first)
    assert again.error is None and again.event.reply_to == first
