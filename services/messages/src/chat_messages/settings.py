from __future__ import annotations

from chat_common.settings import DatabaseSettings
from pydantic_settings import SettingsConfigDict


class MessagesSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="MESSAGES_")

    host: str = "127.0.0.1"
    port: int = 8082
    database_url: str = "sqlite+aiosqlite:///data/messages.db"
    # Write path: commands taken from JetStream per transaction, and how long a fetch waits.
    batch_size: int = 256
    fetch_timeout_s: float = 1.0
    # After the first command arrives, how long to gather more into the same transaction.
    batch_window_s: float = 0.002
    # A replica that dies holding commands: they are redelivered to another after this.
    ack_wait_s: float = 5.0
    max_body_codepoints: int = 4000
    max_group_size: int = 16
