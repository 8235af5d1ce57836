"""Settings of the media service (env prefix ``MEDIA_``)."""

from __future__ import annotations

import os
from typing import Literal

from chat_common.settings import DatabaseSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict


class MediaSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIA_")

    host: str = "127.0.0.1"
    port: int = 8084
    database_url: str = "sqlite+aiosqlite:///data/media.db"
    rpc_timeout_s: float = Field(default=5.0, gt=0)
    # The gateway's credential for the internal HTTP routes (uploads, downloads): a shared
    # secret, required in production (GATEWAY_MEDIA_TOKEN on the gateways).
    internal_token: SecretStr = SecretStr("")

    # --- storage -------------------------------------------------------------------------
    storage: Literal["local", "s3"] = "local"
    local_dir: str = "data/media"
    s3_endpoint: str = ""  # host:port
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")
    s3_bucket: str = "chat-media"
    s3_region: str = ""
    s3_secure: bool = True

    # --- what is accepted ----------------------------------------------------------------
    max_bytes: int = Field(default=25 * 1024 * 1024, ge=1, le=1 << 30)  # file bytes
    max_pixels: int = Field(default=50_000_000, ge=1)  # one frame
    max_frames: int = Field(default=300, ge=1)
    allow_mp4: bool = False
    thumb_px: int = Field(default=320, ge=16, le=2048)
    # per user: total bytes of live uploads, and uploads per second (burst, then rate)
    quota_bytes: int = Field(default=1 << 30, ge=0)
    rate_burst: int = Field(default=30, ge=0)  # 0: no rate limit
    rate_per_s: float = Field(default=0.5, gt=0)

    # --- work ----------------------------------------------------------------------------
    # Decoding threads (Pillow releases the GIL while decoding); default: the cores.
    workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)
    # Uploads waiting for a worker beyond this are refused with 503 at once.
    queue_max: int = Field(default=16, ge=1)

    # --- lifecycle -----------------------------------------------------------------------
    # An upload no live message references is deleted from storage after this long
    # (never attached, or every message that referenced it deleted).
    gc_after_s: float = Field(default=86_400.0, gt=0)
    gc_interval_s: float | None = Field(default=None, gt=0)  # default: gc_after_s / 4, at most 60 s

    @model_validator(mode="after")
    def _production(self) -> MediaSettings:
        if self.environment == "production" and not self.internal_token.get_secret_value():
            raise ValueError("production needs MEDIA_INTERNAL_TOKEN (the gateways' GATEWAY_MEDIA_TOKEN)")
        if self.storage == "s3" and not (self.s3_endpoint and self.s3_access_key.get_secret_value()):
            raise ValueError("MEDIA_STORAGE=s3 needs MEDIA_S3_ENDPOINT, MEDIA_S3_ACCESS_KEY and MEDIA_S3_SECRET_KEY")
        if self.gc_interval_s is None:
            self.gc_interval_s = min(60.0, self.gc_after_s / 4)
        return self
