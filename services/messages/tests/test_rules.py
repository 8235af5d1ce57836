from __future__ import annotations

import pytest
from chat_messages.conversations import Conversations
from chat_messages.rules import clean_name, clean_text, like_pattern, name_key
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import CreateConversation


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("General", "general"),
        ("  Town   Square ", "town square"),
        ("Town\tSquare", "TOWN SQUARE"),
        ("Caf\u0065\u0301", "CAF\u00c9"),  # NFD vs NFC
        ("Straße", "STRASSE"),  # casefold
        ("a\x00b", "AB"),  # control characters removed
    ],
)
def test_names_that_collide(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)


def test_names_that_differ() -> None:
    assert name_key("general") != name_key("general-2")
    assert name_key("a b") != name_key("ab")


def test_clean_name_strips_and_bounds() -> None:
    assert clean_name("  hello\n\x07 world \x1b ") == "hello world"
    assert clean_name("x" * 80) == "x" * 80
    for bad in ("", "  \x00\n ", "x" * 81):
        with pytest.raises(ChatError) as exc:
            clean_name(bad)
        assert exc.value.code == ErrorCode.INVALID


def test_clean_topic_and_description() -> None:
    assert clean_text("  launch\x00 plans\r\nfor Q3 ", "topic", 250) == "launch plans for Q3"
    assert clean_text("", "topic", 250) == ""
    assert clean_text("\x01\x02", "topic", 250) == ""
    assert clean_text("é" * 250, "topic", 250) == "é" * 250
    with pytest.raises(ChatError) as exc:
        clean_text("x" * 251, "topic", 250)
    assert exc.value.code == ErrorCode.INVALID and "topic" in exc.value.message


def test_like_pattern_escapes_wildcards() -> None:
    assert like_pattern("50%_Off") == "%50\\%\\_off%"
    assert like_pattern("a\\b") == "%a\\\\b%"
    assert like_pattern("  Town  SQ ") == "%town sq%"


def test_names_alike_to_the_eye_collide() -> None:
    cyrillic_e, fullwidth = "g\u0435neral", "\uff47\uff45\uff4e\uff45\uff52\uff41\uff4c"
    math = "\U0001d524\U0001d522\U0001d52b\U0001d522\U0001d52f\U0001d51e\U0001d529"
    for lookalike in (cyrillic_e, fullwidth, math, "gen\u202eeral", "gen\u200beral", "GENERAL"):
        assert name_key(lookalike) == name_key("general"), lookalike
    for distinct in ("caf\u00e9", "team1", "\u0434\u043e\u043c"):  # an accent, ASCII digits, other words
        assert name_key(distinct) != name_key({"caf\u00e9": "cafe", "team1": "teaml"}.get(distinct, "dom"))
    assert clean_name(" a\u202eb\u2066c\u200b ") == "abc"  # bidi controls and invisible characters go


async def test_a_confusable_channel_name_is_taken(convs: Conversations) -> None:
    await convs.create("alice", CreateConversation(kind="channel", name="general"))
    with pytest.raises(ChatError) as info:
        await convs.create("bob", CreateConversation(kind="channel", name="g\u0435neral"))
    assert info.value.code == ErrorCode.CONFLICT
