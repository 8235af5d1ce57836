"""``svc.messages.sync``: many conversations' missed events in one call, members only, within
the byte cap (what is not reached is listed in ``rest``)."""

from __future__ import annotations

import orjson
from chat_messages.conversations import Conversations
from chat_messages.store import Store
from chat_messages.writer import Writer
from chat_proto.commands import SendCommand
from chat_proto.messages_api import CreateConversation, SyncPosition, SyncQuery


async def _dm(convs: Conversations, other: str) -> str:
    return str((await convs.create("alice", CreateConversation(kind="dm", members=[other])))["conversation"]["id"])


async def _post(store: Store, conv: str, n: int, body: str = "hello") -> None:
    cmds = [SendCommand(conv=conv, sender="alice", client_msg_id=f"{conv}-{i}", body=body) for i in range(n)]
    await Writer(store).write_batch(cmds)


def q(positions: dict[str, int], per_conv: int = 500, max_bytes: int = 512 * 1024) -> SyncQuery:
    return SyncQuery(
        positions=[SyncPosition(conv=c, after=a) for c, a in positions.items()], per_conv=per_conv, max_bytes=max_bytes
    )


async def test_many_conversations_in_one_call(store: Store, convs: Conversations) -> None:
    a, b = await _dm(convs, "bob"), await _dm(convs, "carol")
    theirs = str((await convs.create("dave", CreateConversation(kind="dm", members=["erin"])))["conversation"]["id"])
    await _post(store, a, 5)
    await _post(store, b, 2)
    res = await convs.sync("alice", q({a: 4, b: 0, theirs: 0, "nosuch": 0}, per_conv=3))
    assert [(c["conv"], [e["seq"] for e in c["events"]], c["has_more"]) for c in res["convs"]] == [
        (a, [5, 6, 7], False),
        (b, [1, 2, 3], True),  # 2 member_joined + 2 messages: per_conv 3 leaves one
    ]
    assert res["not_found"] == [theirs, "nosuch"] and res["rest"] == []


async def test_bytes_cap_cuts_and_lists_the_rest(store: Store, convs: Conversations) -> None:
    a, b, c = [await _dm(convs, u) for u in ("bob", "carol", "dave")]
    for conv in (a, b, c):
        await _post(store, conv, 20, "x" * 1000)
    cap = 30 * 1024
    res = await convs.sync("alice", q({a: 2, b: 2, c: 2}, max_bytes=cap))
    sent = [e for item in res["convs"] for e in item["events"]]
    assert len(orjson.dumps(sent)) <= cap
    assert [i["conv"] for i in res["convs"]] == [a, b] and res["rest"] == [c]
    assert len(res["convs"][0]["events"]) == 20 and not res["convs"][0]["has_more"]
    assert 0 < len(res["convs"][1]["events"]) < 20 and res["convs"][1]["has_more"]
