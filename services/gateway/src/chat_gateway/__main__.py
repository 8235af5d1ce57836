import uvicorn

from chat_gateway.main import create_app
from chat_gateway.settings import GatewaySettings


def main() -> None:
    s = GatewaySettings()
    uvicorn.run(
        create_app(s),
        host=s.host,
        port=s.port,
        log_config=None,
        ws="websockets-sansio",
        ws_max_size=s.ws_max_message_bytes,
        ws_ping_interval=s.heartbeat_s,
        # Silent for 3 x heartbeat_s (one interval plus this timeout) -> dropped.
        ws_ping_timeout=2 * s.heartbeat_s,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
