"""The SDK reads the server's own wire models (chat_proto): every event kind and live frame
the server writes parses into the SDK's public model and dumps back to the same JSON."""

from __future__ import annotations

import typing

import chat_sdk
import orjson
import pytest
from chat_proto import ephemeral
from chat_proto import events as wire
from chat_proto.errors import HTTP_STATUS, ErrorCode
from chat_sdk.errors import ERRORS, STATUS_CODES, error_from_code
from chat_sdk.models import EVENT_KINDS, Event, parse_event, parse_live

KINDS = typing.get_args(wire.EventKind)


def server_event(kind: str) -> wire.Event:
    base = {"conv": "c1", "seq": 7, "kind": kind, "sender": "u1", "ts": "2026-12-06T10:00:00.123Z"}
    extra: dict[str, typing.Any] = {
        "message": {
            "client_msg_id": "m-1",
            "body": "hi",
            "reply_to": 3,
            "attachments": [{"media_id": "a1", "mime": "image/png", "size": 10, "width": 2, "height": 1}],
        },
        "edit": {"target": 5, "body": "new text"},
        "delete": {"target": 5},
        "member_joined": {"user_id": "u2", "role": "member"},
        "member_left": {"user_id": "u2"},
        "role_changed": {"user_id": "u2", "role": "admin"},
        "conversation_updated": {"changes": {"name": "ops", "topic": ""}},
    }[kind]
    return wire.Event.model_validate(base | extra)


@pytest.mark.parametrize("kind", KINDS)
def test_every_event_kind_round_trips_through_the_sdk_model(kind: str) -> None:
    sent = server_event(kind)
    data = orjson.loads(sent.to_json())
    got = parse_event(data)
    assert type(got) is EVENT_KINDS[kind], f"{kind} has no SDK class"
    assert isinstance(got, wire.Event)  # the SDK's models are the server's
    assert got.model_dump(exclude_none=True) == data


def test_a_deleted_message_round_trips_with_its_text_gone() -> None:
    sent = wire.Event(conv="c", seq=1, kind="message", sender="u", ts="t", body="x", deleted=True)
    data = orjson.loads(sent.to_json())
    got = parse_event(data)
    assert got.deleted is True and got.body is None


def test_a_newer_server_s_kind_and_members_still_parse() -> None:
    data = {"conv": "c", "seq": 1, "kind": "poll_opened", "sender": "u", "ts": "t", "question": "?", "role": "x"}
    got = parse_event(data)
    assert type(got) is Event and got.kind == "poll_opened"
    assert got.model_dump(exclude_none=True) == data


@pytest.mark.parametrize(
    "frame",
    [
        ephemeral.ReceiptFrame(conv="c", user_id="u", delivered_seq=4, read_seq=3),
        ephemeral.TypingOut(conv="c", user_id="u", expires_in_ms=4000),
        ephemeral.PresenceOut(user_id="u", status="online", last_seen="2026-12-06T10:00:00.000Z"),
        ephemeral.PresenceOut(user_id="u", status="offline", last_seen=None),
    ],
)
def test_live_frames_round_trip(frame: ephemeral.ReceiptFrame | ephemeral.TypingOut | ephemeral.PresenceOut) -> None:
    data = orjson.loads(ephemeral.encode(frame))
    got = parse_live(data)
    assert got is not None and isinstance(got, type(frame))
    assert got.model_dump() == data


def test_every_server_error_code_has_its_sdk_error() -> None:
    for code in ErrorCode:
        cls = ERRORS[code.value]
        assert cls.code == code.value
        assert isinstance(error_from_code(code.value), cls)
        if HTTP_STATUS[code] != 500:
            assert STATUS_CODES[HTTP_STATUS[code]] == code.value
    assert issubclass(chat_sdk.Forbidden, chat_sdk.ChatError)
