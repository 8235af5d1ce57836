"""Sender: a command published into JetStream, answered with the stored event. JetStream
(de-duplication on Nats-Msg-Id, pubacks on the reply subject) and the messages service
(results on the gateway's results subject) are played by a ``MemoryBus`` publish hook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from chat_gateway.admission import Admission, ConnectionSends
from chat_gateway.limits import SEND, Limits, Rule
from chat_gateway.memory_bus import MemoryBus, MemoryMessage
from chat_gateway.ports import BusMessage
from chat_gateway.sends import Sender
from chat_proto import subjects
from chat_proto.commands import COMMAND_SCHEMA, msg_id
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import Attachment
from fakes import FakeMessages, event, eventually

GW = "gw1"


class Store:
    """JetStream and the messages service behind ``chat.cmd.send.*``.

    ``mode``: ``store`` (ack, store, answer), ``refuse`` (ack, answer a refusal), ``silent``
    (ack, never answer), ``ack_error`` (the stream refuses the publish), ``fail`` (publishing
    itself raises)."""

    def __init__(self, bus: MemoryBus, messages: FakeMessages) -> None:
        self.bus, self.messages = bus, messages
        self.mode = "store"
        self.refusal: dict[str, Any] = {"code": "forbidden", "message": "not a member of this conversation"}
        self.ids: set[str] = set()  # JetStream's de-duplication window
        self.commands: list[MemoryMessage] = []
        self.seqs: dict[str, int] = {}
        bus.on_publish.append(self.on_publish)

    async def on_publish(self, msg: BusMessage) -> None:
        if not msg.subject.startswith("chat.cmd.send."):
            return
        assert isinstance(msg, MemoryMessage)
        self.commands.append(msg)
        if self.mode == "fail":
            raise ConnectionError("bus down")
        if self.mode == "ack_error":
            await self.puback(msg, {"error": {"code": 503, "description": "stream unavailable"}})
            return
        mid = (msg.headers or {})["Nats-Msg-Id"]
        if mid in self.ids:
            await self.puback(msg, {"stream": "CHAT_CMDS", "seq": 1, "duplicate": True})
            return
        self.ids.add(mid)
        await self.puback(msg, {"stream": "CHAT_CMDS", "seq": len(self.ids)})
        if self.mode != "silent":
            await self.answer(orjson.loads(msg.data))

    async def puback(self, msg: MemoryMessage, ack: dict[str, Any]) -> None:
        await self.bus.publish(msg.reply, orjson.dumps(ack))

    async def answer(self, cmd: dict[str, Any]) -> None:
        conv, sender, cmid = cmd["conv"], cmd["sender"], cmd["client_msg_id"]
        res: dict[str, Any] = {"v": 1, "conv": conv, "sender": sender, "client_msg_id": cmid}
        key = (sender, conv, cmid)
        if self.mode == "refuse":
            res |= {"ok": False, "error": self.refusal}
        elif key in self.messages.stored:
            res |= {"ok": True, "created": False, "event": self.messages.stored[key]}
        else:
            seq = self.seqs[conv] = self.seqs.get(conv, 0) + 1
            ev = event(conv, seq, sender=sender, client_msg_id=cmid, body=cmd["body"])
            self.messages.stored[key] = ev
            res |= {"ok": True, "created": True, "event": ev}
        await self.bus.publish(cmd["reply_subject"], orjson.dumps({"v": 1, "results": [res]}))

    def sent_ids(self) -> list[str]:
        return [(m.headers or {})["Nats-Msg-Id"] for m in self.commands]


@dataclass
class Env:
    bus: MemoryBus
    messages: FakeMessages
    store: Store

    async def sender(self, timeout_s: float = 2.0, republish_after_s: float = 0.05, **kw: Any) -> Sender:
        s = Sender(self.bus, self.messages, GW, timeout_s=timeout_s, republish_after_s=republish_after_s, **kw)
        await s.start()
        return s


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    bus, messages = MemoryBus(), FakeMessages()
    yield Env(bus, messages, Store(bus, messages))
    await bus.close()


def limits(burst: int) -> Limits:
    return Limits({SEND: Rule(burst=burst, per_s=0)}, clock=lambda: 0.0)  # no refill: counts are exact


def tokens_left(lim: Limits, user: str) -> int:
    """How many sends ``user`` may still make (takes them)."""
    n = 0
    while lim.check(user, SEND) is None:
        n += 1
        assert n < 1000
    return n


async def within(coro: Any, seconds: float = 2.0) -> Any:
    """``coro`` must finish well before the send timeout under test (no hang)."""
    return await asyncio.wait_for(coro, seconds)


# --- the common path ----------------------------------------------------------------------------
async def test_a_send_is_answered_with_the_stored_event(env: Env) -> None:
    sender = await env.sender()
    res = await within(sender.send("u1", "c1", "m1", "hello"))
    assert res.created is True
    assert res.event == env.messages.stored[("u1", "c1", "m1")]
    assert (res.event["seq"], res.event["ts"]) == (1, event("c1", 1)["ts"])
    res2 = await within(sender.send("u1", "c1", "m2", "again"))
    assert (res2.created, res2.event["seq"], res2.event["body"]) == (True, 2, "again")
    assert sender._waiting == {} and sender._by_token == {}
    assert sender.admission.inflight == 0


class FakeMedia:
    """The media service's ``resolve``: the caller's own uploads only."""

    def __init__(self, uploads: dict[str, tuple[str, Attachment]]) -> None:
        self.uploads = uploads  # media_id -> (owner, attachment)
        self.calls: list[tuple[str, list[str]]] = []

    async def resolve(self, user: str, media_ids: list[str]) -> list[Attachment]:
        self.calls.append((user, media_ids))
        out = []
        for mid in media_ids:
            owner, att = self.uploads.get(mid, ("", None))  # type: ignore[assignment]
            if owner != user or att is None:
                raise ChatError(ErrorCode.NOT_FOUND, f"no upload {mid} of yours")
            out.append(att)
        return out


async def test_the_command_carries_the_fields_and_headers(env: Env) -> None:
    att = Attachment(media_id="med1", mime="image/png", size=10)
    media = FakeMedia({"med1": ("u1", att)})
    sender = await env.sender(media=media)
    await within(sender.send("u1", "c1", "m1", "  hi\x07 there \n", attachments=["med1"], reply_to=3))
    assert media.calls == [("u1", ["med1"])]
    [cmd] = env.store.commands
    assert cmd.subject == subjects.cmd_send("c1")
    assert orjson.loads(cmd.data) == {
        "v": 1,
        "conv": "c1",
        "sender": "u1",
        "client_msg_id": "m1",
        "body": "hi there",  # cleaned: control characters removed, trimmed
        "reply_subject": subjects.gateway_results(GW),
        "attachments": [{"media_id": "med1", "mime": "image/png", "size": 10}],
        "reply_to": 3,
    }
    assert cmd.headers == {"Nats-Msg-Id": msg_id("c1", "u1", "m1"), "Chat-Schema": COMMAND_SCHEMA}
    assert cmd.headers["Nats-Msg-Id"] == "c1:u1:m1"
    assert cmd.reply.startswith(env.bus.inbox(f"chatgw.{GW}."))


async def test_attachments_are_resolved_for_the_sender_and_may_go_without_a_body(env: Env) -> None:
    att = Attachment(media_id="med1", mime="image/png", size=10, name="a.png")
    media = FakeMedia({"med1": ("u1", att), "med2": ("u2", att)})
    sender = await env.sender(media=media)
    res = await within(sender.send("u1", "c1", "m1", "  ", attachments=["med1"]))
    assert res.created and orjson.loads(env.store.commands[0].data)["body"] == ""
    with pytest.raises(ChatError) as exc:  # someone else's upload
        await within(sender.send("u1", "c1", "m2", "x", attachments=["med2"]))
    assert exc.value.code == ErrorCode.NOT_FOUND
    assert len(env.store.commands) == 1  # nothing published for the refused one
    assert sender.admission.inflight == 0


async def test_attachments_without_a_media_service_are_refused(env: Env) -> None:
    sender = await env.sender()
    with pytest.raises(ChatError) as exc:
        await within(sender.send("u1", "c1", "m1", "hi", attachments=["med1"]))
    assert exc.value.code == ErrorCode.INVALID and not env.store.commands


async def test_an_empty_body_is_refused_without_publishing(env: Env) -> None:
    sender = await env.sender()
    with pytest.raises(ChatError) as exc:
        await within(sender.send("u1", "c1", "m1", " \x00 \t"))
    assert exc.value.code == ErrorCode.INVALID
    assert env.store.commands == [] and sender.admission.inflight == 0


# --- failures -----------------------------------------------------------------------------------
async def test_a_refusal_result_raises_its_error(env: Env) -> None:
    env.store.mode = "refuse"
    sender = await env.sender()
    with pytest.raises(ChatError) as exc:
        await within(sender.send("u1", "c1", "m1", "hello"))
    assert exc.value.code == ErrorCode.FORBIDDEN
    assert exc.value.message == "not a member of this conversation"
    assert sender._waiting == {} and sender.admission.inflight == 0


async def test_a_puback_error_raises_unavailable_at_once(env: Env) -> None:
    env.store.mode = "ack_error"
    sender = await env.sender(timeout_s=30.0)
    with pytest.raises(ChatError) as exc:
        await within(sender.send("u1", "c1", "m1", "hello"))  # not the 30 s timeout
    assert exc.value.code == ErrorCode.UNAVAILABLE
    assert sender._waiting == {} and sender._by_token == {}


async def test_a_publish_that_fails_raises_unavailable(env: Env) -> None:
    env.store.mode = "fail"
    sender = await env.sender(timeout_s=30.0)
    with pytest.raises(ChatError) as exc:
        await within(sender.send("u1", "c1", "m1", "hello"))
    assert exc.value.code == ErrorCode.UNAVAILABLE
    assert sender._waiting == {} and sender._by_token == {}
    assert sender.admission.inflight == 0


async def test_no_answer_in_time_raises_unavailable(env: Env) -> None:
    env.store.mode = "silent"
    sender = await env.sender(timeout_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ChatError) as exc:
        await within(sender.send("u1", "c1", "m1", "hello"))
    assert loop.time() - started >= 0.05 * 0.9
    assert exc.value.code == ErrorCode.UNAVAILABLE
    assert "retry" in exc.value.message
    assert sender._waiting == {} and sender._by_token == {}
    assert sender.admission.inflight == 0
    # a late result for it is ignored
    await env.store.answer(orjson.loads(env.store.commands[0].data))
    await env.bus.flush()


async def test_results_for_other_sends_and_garbage_are_ignored(env: Env) -> None:
    env.store.mode = "silent"
    sender = await env.sender()
    task = asyncio.create_task(sender.send("u1", "c1", "m1", "hello"))
    await eventually(lambda: len(env.store.commands) == 1)
    results = subjects.gateway_results(GW)
    await env.bus.publish(results, b"{not json")
    await env.bus.publish(results, orjson.dumps({"results": [{"conv": "c1"}, "x"]}))
    other = {"conv": "c1", "sender": "u1", "client_msg_id": "m9", "ok": True, "created": True, "event": event("c1", 9)}
    await env.bus.publish(results, orjson.dumps({"results": [other]}))
    await env.bus.flush()
    assert not task.done()
    env.store.mode = "store"
    await env.store.answer(orjson.loads(env.store.commands[0].data))
    res = await within(task)
    assert res.event["client_msg_id"] == "m1" and res.event["seq"] == 1


# --- duplicates ---------------------------------------------------------------------------------
async def test_a_duplicate_found_in_the_store_answers_the_first_event_and_refunds(env: Env) -> None:
    first = event("c1", 7, sender="u1", client_msg_id="m1", body="first")
    env.messages.stored[("u1", "c1", "m1")] = first
    env.store.ids.add(msg_id("c1", "u1", "m1"))  # sent before, maybe through another gateway
    sender = await env.sender()
    sender.limits = lim = limits(3)
    assert lim.check("u1", SEND) is None  # the transport charges a token before send()
    res = await within(sender.send("u1", "c1", "m1", "second try"))
    assert res.created is False
    assert res.event["seq"] == 7 and res.event["body"] == "first"
    assert env.messages.called("lookup_send") == [("u1", "c1", "m1")]
    assert len(env.store.commands) == 1  # found: not published again
    assert tokens_left(lim, "u1") == 3  # the replay cost nothing


async def test_a_new_send_keeps_its_token(env: Env) -> None:
    sender = await env.sender()
    sender.limits = lim = limits(3)
    assert lim.check("u1", SEND) is None
    res = await within(sender.send("u1", "c1", "m1", "hello"))
    assert res.created is True
    assert tokens_left(lim, "u1") == 2


async def test_a_duplicate_not_in_the_store_is_republished_under_a_one_time_id(env: Env) -> None:
    env.store.ids.add(msg_id("c1", "u1", "m1"))  # JetStream saw it, the store has nothing
    sender = await env.sender(republish_after_s=0.05)
    res = await within(sender.send("u1", "c1", "m1", "hello"))
    assert res.created is True and res.event["seq"] == 1
    ids = env.store.sent_ids()
    assert len(ids) == 2
    assert ids[0] == "c1:u1:m1"
    assert ids[1].startswith("c1:u1:m1:again:") and len(ids[1]) > len("c1:u1:m1:again:")
    assert env.store.commands[1].data == env.store.commands[0].data  # the same command
    assert env.store.commands[1].headers == {"Nats-Msg-Id": ids[1], "Chat-Schema": COMMAND_SCHEMA}
    assert env.messages.called("lookup_send")  # looked up before republishing
    assert sender._waiting == {} and sender._by_token == {}


async def test_a_republished_refusal_is_answered_at_once(env: Env) -> None:
    env.store.ids.add(msg_id("c1", "u1", "m1"))  # the first attempt was refused
    env.store.mode = "refuse"
    sender = await env.sender(timeout_s=30.0, republish_after_s=0.05)
    with pytest.raises(ChatError) as exc:
        await within(sender.send("u1", "c1", "m1", "hello"))  # not the 30 s timeout
    assert exc.value.code == ErrorCode.FORBIDDEN
    assert ":again:" in env.store.sent_ids()[1]


async def test_two_concurrent_sends_with_one_key_both_get_the_answer(env: Env) -> None:
    sender = await env.sender()
    a, b = await within(asyncio.gather(sender.send("u1", "c1", "m1", "hello"), sender.send("u1", "c1", "m1", "hello")))
    assert a.event == b.event == env.messages.stored[("u1", "c1", "m1")]
    assert a.event["seq"] == 1
    assert env.store.seqs == {"c1": 1}  # stored once
    assert sender._waiting == {} and sender._by_token == {}
    assert sender.admission.inflight == 0


# --- admission ----------------------------------------------------------------------------------
async def test_gateway_admission_refuses_at_once_without_publishing(env: Env) -> None:
    env.store.mode = "silent"
    sender = await env.sender(admission=Admission(max_inflight=1, min_inflight=1, target_s=0.25))
    sender.limits = lim = limits(5)
    assert lim.check("u1", SEND) is None
    first = asyncio.create_task(sender.send("u1", "c1", "m1", "hello"))
    await eventually(lambda: len(env.store.commands) == 1)
    assert lim.check("u1", SEND) is None
    with pytest.raises(ChatError) as exc:
        await within(sender.send("u1", "c1", "m2", "hello"))
    assert exc.value.code == ErrorCode.UNAVAILABLE
    assert exc.value.retry_after_ms is not None and exc.value.retry_after_ms >= 50
    assert len(env.store.commands) == 1  # nothing published for the refused send
    assert sender.admission.inflight == 1
    env.store.mode = "store"
    await env.store.answer(orjson.loads(env.store.commands[0].data))
    assert (await within(first)).created is True
    assert sender.admission.inflight == 0
    assert tokens_left(lim, "u1") == 4  # the refused send's token was given back


async def test_connection_admission_refuses_a_second_send_in_flight(env: Env) -> None:
    env.store.mode = "silent"
    sender = await env.sender()
    conn, other = ConnectionSends(1), ConnectionSends(1)
    first = asyncio.create_task(sender.send("u1", "c1", "m1", "hello", connection=conn))
    await eventually(lambda: len(env.store.commands) == 1)
    with pytest.raises(ChatError) as exc:
        await within(sender.send("u1", "c1", "m2", "hello", connection=conn))
    assert exc.value.code == ErrorCode.UNAVAILABLE
    assert len(env.store.commands) == 1
    assert conn.inflight == 1 and sender.admission.inflight == 1
    second = asyncio.create_task(sender.send("u1", "c1", "m3", "hello", connection=other))  # another connection
    await eventually(lambda: len(env.store.commands) == 2)
    env.store.mode = "store"
    for cmd in env.store.commands:
        await env.store.answer(orjson.loads(cmd.data))
    assert (await within(first)).event["client_msg_id"] == "m1"
    assert (await within(second)).event["client_msg_id"] == "m3"
    assert conn.inflight == other.inflight == 0 and sender.admission.inflight == 0


async def test_refuse_now_answers_what_send_would_without_taking_anything(env: Env) -> None:
    env.store.mode = "silent"
    sender = await env.sender(admission=Admission(max_inflight=1, min_inflight=1, target_s=0.25))
    sender.limits = lim = limits(5)
    conn = ConnectionSends(2)
    assert sender.refuse_now("u1", conn) is None  # room: nothing taken, nothing refunded
    assert sender.admission.inflight == 0 and conn.inflight == 0
    first = asyncio.create_task(sender.send("u1", "c1", "m1", "hello", connection=conn))
    await eventually(lambda: len(env.store.commands) == 1)
    assert lim.check("u1", SEND) is None  # the token the reader takes for the next frame
    err = sender.refuse_now("u1", conn)  # the gateway's bound (1) is reached
    assert err is not None and err.code == ErrorCode.UNAVAILABLE
    assert err.retry_after_ms == sender.admission.retry_after_ms()
    assert sender.admission.inflight == 1 and conn.inflight == 1
    assert tokens_left(lim, "u1") == 5  # that frame's token was given back (send() took none here)
    full = ConnectionSends(1)
    full.enter(100)
    refused = sender.refuse_now("u2", full)  # the connection's own bound comes first
    assert refused is not None and refused.code == ErrorCode.UNAVAILABLE
    env.store.mode = "store"
    await env.store.answer(orjson.loads(env.store.commands[0].data))
    await within(first)
    assert sender.refuse_now("u1", conn) is None
