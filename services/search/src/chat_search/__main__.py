import uvicorn

from chat_search.main import create_app
from chat_search.settings import SearchSettings


def main() -> None:
    settings = SearchSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
