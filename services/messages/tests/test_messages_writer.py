from __future__ import annotations

from chat_messages.conversations import Conversations
from chat_messages.store import Store
from chat_messages.writer import Writer
from chat_proto.commands import SendCommand
from chat_proto.errors import ErrorCode
from chat_proto.messages_api import CreateConversation, HistoryQuery


def cmd(conv: str, sender: str, cmid: str, body: str = "hi") -> SendCommand:
    return SendCommand(conv=conv, sender=sender, client_msg_id=cmid, body=body)


async def _dm(convs: Conversations) -> str:
    out = await convs.create("alice", CreateConversation(kind="dm", members=["bob"]))
    return str(out["conversation"]["id"])


async def test_batch_allocates_gap_free_seqs_after_membership_events(store: Store, convs: Conversations) -> None:
    conv = await _dm(convs)  # seqs 1, 2 are the two member_joined events
    res = await Writer(store).write_batch([cmd(conv, "alice", f"m{i}") for i in range(5)])
    assert [o.event.seq for o in res.outcomes if o.event] == [3, 4, 5, 6, 7]
    assert all(o.created for o in res.outcomes)
    hist = await convs.history("bob", HistoryQuery(conv=conv, limit=200))
    assert [e["seq"] for e in hist["events"]] == [1, 2, 3, 4, 5, 6, 7]


async def test_resend_returns_first_event_and_stores_nothing_new(store: Store, convs: Conversations) -> None:
    conv = await _dm(convs)
    w = Writer(store)
    first = (await w.write_batch([cmd(conv, "alice", "x", "one")])).outcomes[0]
    again = await w.write_batch([cmd(conv, "alice", "x", "different body"), cmd(conv, "alice", "x")])
    assert [o.created for o in again.outcomes] == [False, False]
    assert all(o.event == first.event for o in again.outcomes)
    assert again.new_events == []
    same_batch = await w.write_batch([cmd(conv, "bob", "y"), cmd(conv, "bob", "y")])
    assert len(same_batch.new_events) == 1
    assert same_batch.outcomes[0].event == same_batch.outcomes[1].event


async def test_same_client_msg_id_in_two_conversations_is_two_messages(store: Store, convs: Conversations) -> None:
    a = await _dm(convs)
    b = (await convs.create("alice", CreateConversation(kind="dm", members=["carol"])))["conversation"]["id"]
    res = await Writer(store).write_batch([cmd(a, "alice", "k"), cmd(b, "alice", "k")])
    assert len(res.new_events) == 2


async def test_refusals_are_per_command(store: Store, convs: Conversations) -> None:
    conv = await _dm(convs)
    chan = (await convs.create("alice", CreateConversation(kind="channel", name="general")))["conversation"]["id"]
    res = await Writer(store).write_batch(
        [
            cmd(conv, "carol", "a"),  # not a member of a dm -> 404
            cmd(chan, "bob", "b"),  # not a member of a public channel -> 403
            cmd(conv, "alice", "c", "   "),  # empty after trimming -> 422
            cmd(conv, "alice", "d", "x" * 4001),  # too long -> 413
            cmd("nosuchconv", "alice", "e"),
            cmd(conv, "alice", "f", "  ok  "),
        ]
    )
    codes = [o.error.code if o.error else None for o in res.outcomes]
    assert codes == [
        ErrorCode.NOT_FOUND,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID,
        ErrorCode.TOO_LARGE,
        ErrorCode.NOT_FOUND,
        None,
    ]
    assert res.outcomes[5].event is not None and res.outcomes[5].event.body == "ok"
    assert res.outcomes[5].event.seq == 3


async def test_guest_cannot_post(store: Store, convs: Conversations) -> None:
    from chat_proto.messages_api import AddMember

    chan = (await convs.create("alice", CreateConversation(kind="channel", name="g", private=True)))["conversation"][
        "id"
    ]
    await convs.add_member("alice", AddMember(conv=chan, user_id="bob", role="guest"))
    res = await Writer(store).write_batch([cmd(chan, "bob", "a")])
    assert res.outcomes[0].error is not None and res.outcomes[0].error.code == ErrorCode.FORBIDDEN


async def test_optimistic_write_falls_back_on_a_replay(store: Store, convs: Conversations) -> None:
    conv = await _dm(convs)
    w = Writer(store)
    first = (await w.write_batch([cmd(conv, "alice", "x", "one")], maybe_replays=False)).outcomes[0]
    # A replay beyond JetStream's window arrives as a first delivery: still the first event.
    res = await w.write_batch([cmd(conv, "alice", "x", "two"), cmd(conv, "alice", "y")], maybe_replays=False)
    assert res.outcomes[0].event == first.event and not res.outcomes[0].created
    assert res.outcomes[1].created and res.outcomes[1].event is not None
    assert res.outcomes[1].event.seq == first.event.seq + 1  # the rolled-back attempt left no gap
