"""The gateway: WebSocket and REST edge; authenticates with JWTs issued by auth."""
