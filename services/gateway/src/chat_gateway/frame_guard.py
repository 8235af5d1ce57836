"""Rate limits of one WebSocket connection, checked as each frame is read.

Every frame takes a token of the connection's own ``frames`` bucket (a burst bound per
socket, covering the frames no per-user bucket does: ``ping``, ``sync``, ``auth``); then
``send``, ``typing``, ``delivered``/``read`` take one of the user's bucket of their kind
(shared with the user's other connections, and for sends with REST). A refused frame is
answered with ``error`` ``rate_limited`` (``retry_after_ms``; ``conv`` and
``client_msg_id`` for a send) and nothing else is done.

A connection that earns more than ``abuse_max`` refusals within ``abuse_window_s`` is
closed with 4008 after that answer. Counted are the refusals of frames that arrive before
the retry time the previous refusal of the same kind gave: a client that waits
``retry_after_ms`` (even one that tries each new message once and waits only when
refused) is throttled but never closed; one that floods, or ignores the hint, is.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from chat_proto import frames as F
from prometheus_client import Counter

from chat_gateway.limits import FRAMES, RATE_LIMITED, RECEIPT, SEND, TYPING, Clock, Limits, Rule, TokenBucket, refuse
from chat_gateway.settings import GatewaySettings

ABUSE_CLOSES = Counter("chat_gateway_abuse_closes_total", "Connections closed with 4008 for rate-limit abuse")

FRAME_KINDS = {"send": SEND, "typing": TYPING, "delivered": RECEIPT, "read": RECEIPT}


@dataclass(frozen=True)
class Refusal:
    frame: str  # the error frame to answer with
    abusive: bool  # close the connection with 4008 after it


class FrameGuard:
    def __init__(
        self,
        limits: Limits,
        frames: Rule,
        abuse_max: int,
        abuse_window_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self._bucket = TokenBucket(frames, clock()) if frames.enabled else None
        self.abuse_max = abuse_max
        self.abuse_window_s = abuse_window_s
        self._refused: deque[float] | None = None  # built on the first refusal (~0.8 KiB)
        self._retry_at: dict[str, float] = {}  # kind -> when the last refusal said to retry

    def admit(self, user: str, frame: Any) -> Refusal | None:
        """None: handle ``frame``. Else the refusal to answer with instead."""
        now = self.clock()
        kind = FRAMES
        wait = self._bucket.try_take(now) if self._bucket is not None else None
        if wait is not None:
            RATE_LIMITED.labels(FRAMES, "ws").inc()
        else:
            kind = FRAME_KINDS.get(frame.type, "")
            if not kind or not user:
                return None
            wait = self.limits.check(user, kind)
            if wait is None:
                return None
        extra: dict[str, Any] = {}
        if hasattr(frame, "conv"):
            extra["conv"] = frame.conv
        if hasattr(frame, "client_msg_id"):
            extra["client_msg_id"] = frame.client_msg_id
        text = F.error_frame(refuse(kind, wait), frame.ref, **extra)
        early = now < self._retry_at.get(kind, 0.0)
        self._retry_at[kind] = now + wait
        return Refusal(text, early and self._abusive(now))

    def _abusive(self, now: float) -> bool:
        q = self._refused
        if q is None:
            q = self._refused = deque()
        q.append(now)
        while q and q[0] <= now - self.abuse_window_s:
            q.popleft()
        if len(q) > self.abuse_max:
            q.clear()
            ABUSE_CLOSES.inc()
            return True
        return False

    @classmethod
    def from_settings(cls, limits: Limits, s: GatewaySettings) -> FrameGuard:
        return cls(limits, Rule(s.rate_frames_burst, s.rate_frames_per_s), s.rate_abuse_errors, s.rate_abuse_window_s)
