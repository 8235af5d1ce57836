import uvicorn

from chat_messages.main import create_app
from chat_messages.settings import MessagesSettings


def main() -> None:
    settings = MessagesSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
