"""Settings base: every service has one pydantic-settings class with its own env prefix."""

from __future__ import annotations

from typing import Literal

from chat_bus.bus import NatsAuth
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

Environment = Literal["development", "test", "production"]


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``model_config`` with their env prefix."""

    environment: Environment = "development"
    log_level: str = "INFO"
    nats_url: str = "nats://127.0.0.1:4222"
    # This service's own NATS user (chat_proto.nats_permissions); required in production.
    # A ``tls://`` URL connects with TLS, verified against ``nats_tls_ca_file`` when set.
    nats_user: str = ""
    nats_password: SecretStr = SecretStr("")
    nats_tls_ca_file: str = ""
    # JetStream replicas for the streams this service declares (3 in production clusters),
    # and their sizes (JetStream reserves them on the server's storage).
    js_replicas: int = 1
    js_cmd_max_bytes: int = Field(default=1 << 30, ge=1 << 20)
    js_evt_max_bytes: int = Field(default=10 << 30, ge=1 << 20)

    @model_validator(mode="after")
    def _check_replicas(self) -> ServiceSettings:
        if self.js_replicas not in (1, 3, 5):
            raise ValueError("js_replicas must be 1, 3 or 5")
        if self.environment == "production" and not (self.nats_user and self.nats_password.get_secret_value()):
            raise ValueError("production needs NATS credentials: set the service's NATS_USER and NATS_PASSWORD")
        return self

    def nats_auth(self, service: str) -> NatsAuth:
        return NatsAuth(service, self.nats_user, self.nats_password.get_secret_value(), self.nats_tls_ca_file)


class DatabaseSettings(ServiceSettings):
    """A service that owns tables."""

    database_url: str = "sqlite+aiosqlite:///data/service.db"
    db_pool_size: int = 10
    migrate_on_start: bool = True
