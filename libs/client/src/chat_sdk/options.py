"""``ClientOptions``: the SDK's tuning knobs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ClientOptions:
    """Tuning knobs; the defaults suit an interactive app."""

    backoff_base_s: float = 0.5  # reconnect backoff: full jitter over [0, min(cap, base * 2**n)]
    backoff_cap_s: float = 30.0
    backoff_reset_s: float = 5.0  # a connection that lived this long resets the backoff
    refresh_fraction: float = 0.8  # refresh the access token at this share of its lifetime
    heartbeat_misses: int = 3  # dead after heartbeat_misses x heartbeat_s of silence
    connect_timeout_s: float = 10.0  # one WebSocket connect + auth
    start_timeout_s: float = 30.0  # ChatClient.connect() gives up after this
    send_deadline_s: float = 60.0  # send() keeps retrying until this
    ack_timeout_s: float = 15.0  # no ack within this → resend (the gateway answers within 10 s)
    sync_timeout_s: float = 30.0
    gap_hold_s: float = 0.5  # a gap older than this is filled over REST
    request_timeout_s: float = 30.0  # REST
