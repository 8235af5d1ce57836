"""Short-lived, same-origin media URLs (PROTOCOL §5): ``/v1/media/{id}?u=…&exp=…&sig=…`` (and
``…/thumbnail``), so ``<img src>`` works without a bearer header. The signature is an
HMAC-SHA256 of (variant, media id, user id, expiry) with ``GATEWAY_MEDIA_URL_KEY``; the user
it names is the reader: the media service checks on every fetch that this user may still see
the media (a user removed from the conversation loses access even with a fresh URL).

Every attachment the gateway passes on (event frames, history, sync, upload answers) gets
``url`` and, for images, ``thumbnail_url`` signed for whoever receives it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

log = logging.getLogger("chat.gateway.media")


class UrlSigner:
    def __init__(self, key: bytes, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self.ttl_s = ttl_s
        self.clock = clock

    @classmethod
    def from_key(cls, key: str, ttl_s: int) -> UrlSigner:
        if not key:
            log.warning("GATEWAY_MEDIA_URL_KEY unset: media URLs are signed with a key of this process only")
            return cls(secrets.token_bytes(32), ttl_s)
        return cls(key.encode(), ttl_s)

    def _sig(self, variant: str, media_id: str, user: str, exp: int) -> str:
        msg = f"{variant}\n{media_id}\n{user}\n{exp}".encode()
        digest = hmac.new(self.key, msg, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def url(self, media_id: str, user: str, thumbnail: bool = False) -> str:
        variant = "thumbnail" if thumbnail else "file"
        exp = int(self.clock()) + self.ttl_s
        query = urlencode({"u": user, "exp": exp, "sig": self._sig(variant, media_id, user, exp)})
        return f"/v1/media/{media_id}{'/thumbnail' if thumbnail else ''}?{query}"

    def verify(self, media_id: str, user: str, exp: int, sig: str, thumbnail: bool = False) -> bool:
        """A valid signature for this media and variant, not expired, not too far ahead."""
        now = self.clock()
        if exp < now or exp > now + self.ttl_s + 5:
            return False
        want = self._sig("thumbnail" if thumbnail else "file", media_id, user, exp)
        return hmac.compare_digest(want.encode(), sig.encode())

    def attachments(self, items: list[dict[str, Any]], user: str) -> list[dict[str, Any]]:
        """Copies of attachment objects with ``url`` (and ``thumbnail_url`` for images)."""
        out = []
        for a in items:
            a = dict(a)
            mid = a.get("media_id")
            if isinstance(mid, str):
                a["url"] = self.url(mid, user)
                if str(a.get("mime", "")).startswith("image/"):
                    a["thumbnail_url"] = self.url(mid, user, thumbnail=True)
            out.append(a)
        return out

    def event(self, ev: dict[str, Any], user: str) -> dict[str, Any]:
        """``ev`` as ``user`` gets it: its attachments with URLs signed for them."""
        atts = ev.get("attachments")
        if not atts:
            return ev
        return {**ev, "attachments": self.attachments(atts, user)}
