import uvicorn

from chat_presence.main import create_app
from chat_presence.settings import PresenceSettings


def main() -> None:
    settings = PresenceSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
