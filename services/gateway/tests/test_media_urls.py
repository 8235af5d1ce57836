"""Signed media URLs (media_urls.py): bound to variant, media, reader and expiry."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from chat_gateway.media_urls import UrlSigner


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def test_a_url_verifies_for_its_media_reader_and_variant_only() -> None:
    clock = Clock(1_000_000.0)
    s = UrlSigner(b"k" * 32, 300, clock)
    url = s.url("m1", "alice")
    assert urlparse(url).path == "/v1/media/m1"
    q = query(url)
    assert q["u"] == "alice" and int(q["exp"]) == 1_000_300
    assert s.verify("m1", "alice", int(q["exp"]), q["sig"])
    assert not s.verify("m2", "alice", int(q["exp"]), q["sig"])  # another media
    assert not s.verify("m1", "bob", int(q["exp"]), q["sig"])  # another reader
    assert not s.verify("m1", "alice", int(q["exp"]) - 1, q["sig"])  # another expiry
    assert not s.verify("m1", "alice", int(q["exp"]), q["sig"], thumbnail=True)  # the thumbnail's
    assert not UrlSigner(b"x" * 32, 300, clock).verify("m1", "alice", int(q["exp"]), q["sig"])  # another key
    t = query(s.url("m1", "alice", thumbnail=True))
    assert s.verify("m1", "alice", int(t["exp"]), t["sig"], thumbnail=True)


def test_expired_and_too_far_ahead_are_refused() -> None:
    clock = Clock(5_000.0)
    s = UrlSigner(b"k" * 32, 60, clock)
    q = query(s.url("m1", "alice"))
    exp = int(q["exp"])
    clock.t = exp + 0.5
    assert not s.verify("m1", "alice", exp, q["sig"])
    # a signature for an expiry beyond the lifetime (a key leak cannot mint long links
    # that this gateway accepts) is refused even when it is authentic
    far = int(clock.t) + 3600
    assert not s.verify("m1", "alice", far, s._sig("file", "m1", "alice", far))


def test_events_get_per_reader_urls_and_are_not_changed_in_place() -> None:
    s = UrlSigner(b"k" * 32, 300, Clock(10.0))
    ev = {
        "conv": "c",
        "seq": 3,
        "kind": "message",
        "attachments": [{"media_id": "m1", "mime": "image/png", "size": 3}, {"media_id": "m2", "mime": "text/plain"}],
    }
    a, b = s.event(ev, "alice"), s.event(ev, "bob")
    assert "url" not in ev["attachments"][0]  # the shared event is untouched
    assert query(a["attachments"][0]["url"])["u"] == "alice" and query(b["attachments"][0]["url"])["u"] == "bob"
    assert "thumbnail_url" in a["attachments"][0] and "thumbnail_url" not in a["attachments"][1]
    plain = {"conv": "c", "seq": 4, "kind": "message", "body": "hi"}
    assert s.event(plain, "alice") is plain
