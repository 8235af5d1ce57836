"""Auth settings (env prefix ``AUTH_``)."""

from __future__ import annotations

import os

from chat_common.settings import DatabaseSettings
from chat_proto.auth_api import AUDIENCE
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

# OWASP password storage cheat sheet: argon2id, m=19 MiB, t=2, p=1.
OWASP_MEMORY_KIB = 19 * 1024
OWASP_TIME_COST = 2


class AuthSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///data/auth.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)

    issuer: str = "chat-auth"
    audience: str = AUDIENCE
    access_ttl_s: int = Field(default=900, ge=1, le=900)
    refresh_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)

    # Per-account login throttle: `login_max_failures` failures within
    # `login_failure_window_s` lock the account for base * 2**(n-1) seconds
    # (n = lockouts since the last success), capped at `login_lockout_max_s`.
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_s: int = Field(default=15 * 60, ge=1)
    login_lockout_base_s: int = Field(default=60, ge=1)
    login_lockout_max_s: int = Field(default=3600, ge=1)

    # The first admin. Outside production the first user to register is made admin (logged);
    # in production nobody is, unless registering with this one-time token (or an operator
    # runs `chat-admin bootstrap USERNAME` / `set-admin`).
    bootstrap_admin_token: SecretStr = SecretStr("")

    # Password hashing (passwords.py): this many hashes at once, this many more waiting;
    # beyond, login and register answer 503 unavailable at once.
    hash_workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1, le=64)
    hash_queue: int = Field(default=32, ge=0, le=10_000)

    # signing-key rotation (chat-admin keys rotate): a new key is published this long before
    # it signs; every replica reloads the keys this often
    key_publish_lead_s: float = Field(default=300.0, ge=0)
    key_reload_s: float = Field(default=30.0, gt=0)
    # argon2id parameters (PasswordHasher). Lower them only in tests.
    argon2_memory_kib: int = Field(default=OWASP_MEMORY_KIB, ge=8)
    argon2_time_cost: int = Field(default=OWASP_TIME_COST, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> AuthSettings:
        if self.login_lockout_max_s < self.login_lockout_base_s:
            raise ValueError("login_lockout_max_s must be >= login_lockout_base_s")
        if self.environment == "production" and (
            self.argon2_memory_kib < OWASP_MEMORY_KIB or self.argon2_time_cost < OWASP_TIME_COST
        ):
            raise ValueError("argon2 parameters below the OWASP minimum in production")
        return self
