"""Settings base: every service has one pydantic-settings class with its own env prefix."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings

Environment = Literal["development", "test", "production"]


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``model_config`` with their env prefix."""

    environment: Environment = "development"
    log_level: str = "INFO"
    nats_url: str = "nats://127.0.0.1:4222"
    # JetStream replicas for the streams this service declares (3 in production clusters).
    js_replicas: int = 1

    @model_validator(mode="after")
    def _check_replicas(self) -> ServiceSettings:
        if self.js_replicas not in (1, 3, 5):
            raise ValueError("js_replicas must be 1, 3 or 5")
        return self


class DatabaseSettings(ServiceSettings):
    """A service that owns tables."""

    database_url: str = "sqlite+aiosqlite:///data/service.db"
    db_pool_size: int = 10
    migrate_on_start: bool = True
