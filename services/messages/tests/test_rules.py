from __future__ import annotations

import pytest
from chat_messages.rules import clean_name, clean_text, like_pattern, name_key
from chat_proto.errors import ChatError, ErrorCode


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
