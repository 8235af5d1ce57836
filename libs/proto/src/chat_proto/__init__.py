"""Wire shapes shared by every process of the chat backend (protocol version 1)."""

PROTOCOL_VERSION = 1
