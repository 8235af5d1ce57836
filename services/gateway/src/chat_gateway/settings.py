from __future__ import annotations

import ipaddress
import uuid
from typing import Annotated, Literal

from chat_common.settings import ServiceSettings
from chat_proto.auth_api import AUDIENCE
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from chat_gateway.web import parse_origins


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    host: str = "127.0.0.1"
    port: int = 8080
    # /metrics (with /healthz and /readyz) on this port only (ops_port.py); 0: a free port.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    # Unique per process: names this gateway's results subject.
    gateway_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], pattern=r"^[A-Za-z0-9_-]{1,64}$")
    jwt_issuer: str = "chat-auth"
    jwt_audience: str = AUDIENCE
    # WebSocket
    heartbeat_s: float = 5.0
    auth_timeout_s: float = 5.0
    max_frame_bytes: int = 64 * 1024
    # Frames above this are refused by the WebSocket layer itself (close 1009).
    ws_max_message_bytes: int = 1024 * 1024
    queue_max_frames: int = 1000
    queue_max_bytes: int = 4 * 1024 * 1024
    max_inflight_frames: int = Field(default=512, ge=2)
    # Sends
    send_timeout_s: float = 10.0
    # A resend JetStream drops as a duplicate with no stored event found within this long
    # (the first attempt was refused, or is still queued) is published again.
    send_republish_after_s: float = 1.0
    # Admission (admission.py): sends waiting for the store, per gateway adaptive between
    # MIN and MAX (kept near TARGET_S of latency), per connection fixed; beyond: unavailable.
    send_max_inflight: int = Field(default=2000, ge=1)
    send_min_inflight: int = Field(default=16, ge=1)
    send_target_s: float = Field(default=0.25, gt=0)
    # ... kept near this many times the lowest send latency seen lately (at most TARGET_S)
    send_target_factor: float = Field(default=6.0, ge=1)
    # ... and at least this (a few commit cycles of the store: below capacity its latencies
    # already spread over several times the lowest)
    send_target_floor_s: float = Field(default=0.1, gt=0)
    connection_max_inflight_sends: int = Field(default=250, ge=1)
    rpc_timeout_s: float = 5.0
    # Ordering: how long out-of-order events are held waiting for a missing seq.
    gap_fill_after_s: float = 0.15
    gap_give_up_s: float = 1.0
    sync_max_events: int = 500
    # Receipts: delivered/read frames are coalesced per (user, conversation) for this long and
    # sent to the messages service as one batch (at most receipt_max_batch updates per RPC).
    receipt_window_s: float = Field(default=0.1, gt=0, le=5)
    receipt_max_batch: int = Field(default=1000, ge=1, le=2000)
    max_request_bytes: int = 256 * 1024
    # Revoked users: the deny-list is reloaded from auth this often (covers missed messages).
    revocation_resync_s: float = Field(default=30.0, gt=0)
    # Presence reports (presence_reporter.py): the full list of connected users this often,
    # changes within PRESENCE_BATCH_S.
    presence_interval_s: float = Field(default=5.0, gt=0)
    presence_batch_s: float = Field(default=0.2, ge=0)
    # Typing (typing_relay.py): at most one relayed per user per conversation per interval.
    typing_interval_s: float = Field(default=1.0, ge=0)
    typing_expires_ms: int = Field(default=5000, ge=1)
    # Rate limits (limits.py): token buckets per user on this gateway, ``burst`` tokens refilled
    # at ``per_s`` a second; a burst of 0 turns that limit off.
    rate_send_burst: int = Field(default=250, ge=0)  # WS send + REST POST …/messages
    rate_send_per_s: float = Field(default=10.0, gt=0)
    rate_typing_burst: int = Field(default=30, ge=0)
    rate_typing_per_s: float = Field(default=15.0, gt=0)
    rate_receipt_burst: int = Field(default=200, ge=0)  # WS delivered + read
    rate_receipt_per_s: float = Field(default=50.0, gt=0)
    rate_write_burst: int = Field(default=120, ge=0)  # other REST writes under /v1 (not /v1/auth)
    rate_write_per_s: float = Field(default=5.0, gt=0)
    # /v1/auth: per client address (client_address.py) and for all clients of this gateway
    # together (``_GLOBAL_``). Loopback is not exempt; a burst of 0 turns a budget off.
    rate_login_burst: int = Field(default=30, ge=0)
    rate_login_per_s: float = Field(default=0.5, gt=0)
    rate_login_global_burst: int = Field(default=200, ge=0)
    rate_login_global_per_s: float = Field(default=20.0, gt=0)
    rate_register_burst: int = Field(default=10, ge=0)
    rate_register_per_s: float = Field(default=0.05, gt=0)
    rate_register_global_burst: int = Field(default=100, ge=0)
    rate_register_global_per_s: float = Field(default=5.0, gt=0)
    rate_refresh_burst: int = Field(default=60, ge=0)
    rate_refresh_per_s: float = Field(default=1.0, gt=0)
    rate_refresh_global_burst: int = Field(default=1000, ge=0)
    rate_refresh_global_per_s: float = Field(default=200.0, gt=0)
    # Proxies (CIDRs, comma-separated) whose X-Forwarded-For / Forwarded is believed; the
    # client is the rightmost hop that is not one of them. Default: none (the peer is the client).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Per WebSocket connection: every client frame.
    rate_frames_burst: int = Field(default=500, ge=0)
    rate_frames_per_s: float = Field(default=100.0, gt=0)
    # More than this many rate_limited errors on one connection within the window -> close 4008.
    rate_abuse_errors: int = Field(default=100, ge=1)
    rate_abuse_window_s: float = Field(default=10.0, gt=0)
    # Authenticated WebSocket connections of one user on this gateway; the next is refused (4008).
    max_connections_per_user: int = Field(default=20, ge=1)
    # Most event bytes one sync replay holds in memory; conversations beyond it are listed
    # in `truncated` (the client pages them over REST).
    sync_max_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    # SIGTERM: connections are closed with 1012 spread over this many seconds.
    drain_s: float = Field(default=5.0, ge=0)
    # Media (PROTOCOL §5): the media service's internal HTTP base URL ("" = uploads off),
    # the token it knows gateways by (its MEDIA_INTERNAL_TOKEN), the upload cap in file
    # bytes (its MEDIA_MAX_BYTES), and the key and lifetime of the signed media URLs
    # (every gateway needs the same key; without one a random key per process).
    media_url: str = ""
    media_token: SecretStr = SecretStr("")
    media_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1, le=1 << 30)
    media_url_key: SecretStr = SecretStr("")
    media_url_ttl_s: int = Field(default=300, ge=10, le=300)
    media_timeout_s: float = Field(default=60.0, gt=0)

    # The browser (chat_gateway.web): the web app's static export served at / ("" = none);
    # origins (comma-separated scheme://host[:port], or *) allowed to open /ws and to use the
    # refresh cookie, beside the gateway's own; origins that get CORS headers on /v1 (none:
    # same origin only); the refresh cookie's lifetime (keep it AUTH_REFRESH_TTL_S) and its
    # Secure flag (auto: when the request came over TLS, as seen through trusted proxies).
    web_dir: str = ""
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    refresh_cookie_max_age_s: int = Field(default=30 * 24 * 3600, ge=60)
    cookie_secure: Literal["auto", "always", "never"] = "auto"

    @field_validator("allowed_origins", "cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str | list):
            return parse_origins(value)
        return value

    @model_validator(mode="after")
    def _media_in_production(self) -> GatewaySettings:
        if (
            self.environment == "production"
            and self.media_url
            and not (self.media_token.get_secret_value() and self.media_url_key.get_secret_value())
        ):
            raise ValueError("production needs GATEWAY_MEDIA_TOKEN and GATEWAY_MEDIA_URL_KEY with GATEWAY_MEDIA_URL")
        return self

    @model_validator(mode="after")
    def _sends_below_frames(self) -> GatewaySettings:
        # Sends waiting for the store must leave answer slots for other frames, or the
        # connection stops being read (and misses its keepalives) while they wait.
        if self.connection_max_inflight_sends >= self.max_inflight_frames:
            raise ValueError("connection_max_inflight_sends must be below max_inflight_frames")
        return self

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _cidrs(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            for cidr in value:
                ipaddress.ip_network(str(cidr).strip(), strict=False)  # ValueError: not a CIDR
        return value
