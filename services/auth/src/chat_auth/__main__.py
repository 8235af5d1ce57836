"""``python -m chat_auth``: serve the ops routes and the NATS RPC handlers."""

from __future__ import annotations

import uvicorn
from chat_common.logging import setup_logging

from chat_auth.settings import AuthSettings


def main() -> None:
    settings = AuthSettings()
    setup_logging("auth", settings.log_level)
    uvicorn.run(
        "chat_auth.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,
    )


if __name__ == "__main__":
    main()
