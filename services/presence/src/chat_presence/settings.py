from __future__ import annotations

from chat_common.settings import DatabaseSettings
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict


class PresenceSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRESENCE_")

    host: str = "127.0.0.1"
    port: int = 8083
    database_url: str = "sqlite+aiosqlite:///data/presence.db"
    # The gateways' heartbeat interval (GATEWAY_PRESENCE_INTERVAL_S); sets the warm-up. Each
    # report carries its gateway's own interval, which is what the dead-gateway rule uses.
    gateway_interval_s: float = Field(default=5.0, gt=0)
    # A fresh replica decides no offline before this (default 1.2 intervals + 0.5 s).
    warmup_s: float | None = Field(default=None, ge=0)
    # A user no gateway lists any more goes offline after this; a reconnect before it is a no-op.
    offline_grace_s: float = Field(default=3.0, ge=0)
    # A gateway silent for this many of its intervals is dead: its users go offline at once.
    dead_after_intervals: float = Field(default=2.5, gt=1)
    # Changes are decided and published in rounds this far apart (coalescing window).
    coalesce_s: float = Field(default=0.25, gt=0)
    # Channels with more members than this get no presence frames (clients ask GET /v1/presence).
    max_fanout_members: int = Field(default=100, ge=2)
    # How long a user's fanout conversations are cached.
    convs_cache_s: float = Field(default=10.0, ge=0)
    # How often the online users' last_seen is written (offline transitions are written at once).
    persist_interval_s: float = Field(default=30.0, gt=0)
    rpc_timeout_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _warmup(self) -> PresenceSettings:
        if self.warmup_s is None:
            self.warmup_s = 1.2 * self.gateway_interval_s + 0.5
        return self
