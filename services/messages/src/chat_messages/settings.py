from __future__ import annotations

from chat_common.settings import DatabaseSettings
from pydantic_settings import SettingsConfigDict


class MessagesSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="MESSAGES_")

    host: str = "127.0.0.1"
    port: int = 8082
    database_url: str = "sqlite+aiosqlite:///data/messages.db"
    # Write path: at most this many commands per transaction (and per pull request).
    batch_size: int = 256
    # Lifetime of one pull request on the command consumer; renewed before it runs out.
    pull_expires_s: float = 5.0
    # A replica that dies holding commands: they are redelivered to another after this.
    ack_wait_s: float = 5.0
    max_body_codepoints: int = 4000
    max_group_size: int = 16
