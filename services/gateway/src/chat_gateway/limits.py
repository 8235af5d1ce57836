"""Rate limits: token buckets, and this gateway's registry of per-user buckets.

A bucket holds up to ``burst`` tokens and gains ``per_s`` tokens a second (monotonic
clock); an action takes one token or is refused with the time until one is there. The
registry keeps one bucket per (kind, user), shared by all of the user's connections and
REST calls on this gateway. A full bucket is indistinguishable from a new one, so the
registry drops full buckets now and then: it holds only users active within about
``burst / per_s`` seconds.

Buckets are per gateway (no shared state on the hot path): a user whose traffic goes
through G gateways may get up to G times the budget (docs/protocol.md).

Other handlers use ``check(user, kind)`` (seconds to wait, or None when allowed) and
``refuse(kind, wait)`` to build the ``rate_limited`` error.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping

# re-exported: the gateway's modules and tests import them from here
from chat_common.ratelimit import MAX_RETRY_AFTER_S as MAX_RETRY_AFTER_S
from chat_common.ratelimit import Rule as Rule
from chat_common.ratelimit import TokenBucket as TokenBucket
from chat_proto.errors import ChatError, ErrorCode
from prometheus_client import Counter, Gauge

from chat_gateway.settings import GatewaySettings

# Kinds of per-user buckets.
SEND = "send"  # WS `send` and REST POST …/messages together (PROTOCOL §4)
TYPING = "typing"  # WS `typing`
RECEIPT = "receipt"  # WS `delivered` / `read`
WRITE = "write"  # other REST writes under /v1 (not /v1/auth/*)
# /v1/auth, per client address and (``*_GLOBAL``, key ``GLOBAL_KEY``) for all clients.
LOGIN, LOGIN_GLOBAL = "login", "login_global"
REGISTER, REGISTER_GLOBAL = "register", "register_global"
REFRESH, REFRESH_GLOBAL = "refresh", "refresh_global"
GLOBAL_KEY = "*"
# Per connection only (not in the registry): every client frame.
FRAMES = "frames"
# Connections of one user on this gateway beyond the cap.
CONNECTIONS_KIND = "connections"

RATE_LIMITED = Counter("chat_gateway_rate_limited_total", "Actions refused with rate_limited", ["kind", "transport"])
BUCKETS = Gauge("chat_gateway_rate_limit_buckets", "Per-user token buckets held (not full)")

Clock = Callable[[], float]


class Limits:
    """Per-user buckets of this gateway, by kind (``SEND``, ``TYPING``, ``RECEIPT``, ``WRITE``)."""

    def __init__(
        self,
        rules: Mapping[str, Rule],
        clock: Clock = time.monotonic,
        sweep_every_s: float = 10.0,
        max_buckets: int = 200_000,
    ) -> None:
        self.rules = dict(rules)
        self.clock = clock
        self.sweep_every_s = sweep_every_s
        # Keys come from outside (user ids, client addresses): past this many buckets even
        # after a sweep, new keys go unmetered here (global budgets still apply to them).
        self.max_buckets = max_buckets
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, user: str, kind: str, transport: str = "ws") -> float | None:
        """Take one token of ``user``'s ``kind`` bucket: None when allowed, else the seconds
        to wait (the action must then be refused, and nothing done)."""
        rule = self.rules.get(kind)
        if rule is None or not rule.enabled:
            return None
        now = self.clock()
        if now - self._swept >= self.sweep_every_s:
            self.sweep(now)
        key = (kind, user)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_buckets:
                self.sweep(now)
                if len(self._buckets) >= self.max_buckets:
                    return None
            bucket = self._buckets[key] = TokenBucket(rule, now)
        wait = bucket.try_take(now)
        if wait is not None:
            RATE_LIMITED.labels(kind, transport).inc()
        return wait

    def refund(self, user: str, kind: str) -> None:
        """Give back the token of an action that turned out to cost nothing (a replayed send)."""
        bucket = self._buckets.get((kind, user))
        if bucket is not None:
            bucket.give_back(self.clock())

    def enforce(self, user: str, kind: str, transport: str = "rest") -> None:
        """``check``, raising the ``rate_limited`` error when refused."""
        wait = self.check(user, kind, transport)
        if wait is not None:
            raise refuse(kind, wait)

    def sweep(self, now: float | None = None) -> None:
        """Drop full buckets (they equal new ones): bounds the registry to active users."""
        now = self.clock() if now is None else now
        self._swept = now
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        BUCKETS.set(len(self._buckets))


def refuse(kind: str, wait_s: float) -> ChatError:
    """The ``rate_limited`` error for a refusal with ``wait_s`` seconds to wait."""
    return ChatError(
        ErrorCode.RATE_LIMITED,
        f"too many {_NOUNS.get(kind, kind)}; retry later",
        retry_after_ms=max(1, math.ceil(wait_s * 1000)),
    )


_NOUNS = {
    SEND: "messages",
    TYPING: "typing notifications",
    RECEIPT: "receipts",
    WRITE: "requests",
    FRAMES: "frames",
    LOGIN: "logins from this address",
    LOGIN_GLOBAL: "logins",
    REGISTER: "registrations from this address",
    REGISTER_GLOBAL: "registrations",
    REFRESH: "token refreshes from this address",
    REFRESH_GLOBAL: "token refreshes",
}

_SEND_PATH = re.compile(r"^/v1/conversations/[^/]+/messages/?$")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def rest_kind(method: str, path: str) -> str | None:
    """The bucket a REST request is charged to: ``SEND`` for POST …/messages, ``WRITE`` for
    any other write under /v1 except /v1/auth/*, None for reads."""
    if method not in _WRITE_METHODS or not path.startswith("/v1/") or path.startswith("/v1/auth/"):
        return None
    if method == "POST" and _SEND_PATH.match(path):
        return SEND
    return WRITE


def rules_from(s: GatewaySettings) -> dict[str, Rule]:
    return {
        SEND: Rule(s.rate_send_burst, s.rate_send_per_s),
        TYPING: Rule(s.rate_typing_burst, s.rate_typing_per_s),
        RECEIPT: Rule(s.rate_receipt_burst, s.rate_receipt_per_s),
        WRITE: Rule(s.rate_write_burst, s.rate_write_per_s),
        LOGIN: Rule(s.rate_login_burst, s.rate_login_per_s),
        LOGIN_GLOBAL: Rule(s.rate_login_global_burst, s.rate_login_global_per_s),
        REGISTER: Rule(s.rate_register_burst, s.rate_register_per_s),
        REGISTER_GLOBAL: Rule(s.rate_register_global_burst, s.rate_register_global_per_s),
        REFRESH: Rule(s.rate_refresh_burst, s.rate_refresh_per_s),
        REFRESH_GLOBAL: Rule(s.rate_refresh_global_burst, s.rate_refresh_global_per_s),
    }


def charge_address(limits: Limits, kind: str, global_kind: str, address: str) -> None:
    """One token of the address's ``kind`` bucket and one of the ``global_kind`` bucket, or
    ``rate_limited`` (the address's token is given back when the global budget refuses)."""
    limits.enforce(address, kind)
    wait = limits.check(GLOBAL_KEY, global_kind, "rest")
    if wait is not None:
        limits.refund(address, kind)
        raise refuse(global_kind, wait)
