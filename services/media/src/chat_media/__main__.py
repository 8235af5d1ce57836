import uvicorn

from chat_media.main import create_app
from chat_media.settings import MediaSettings


def main() -> None:
    settings = MediaSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
