"""WebSocket frames (PROTOCOL §4). Client frames are discriminated on ``type``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from chat_proto.bounds import ClientMsgId, Seq, SeqRef
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import Attachment

MAX_FRAME_BYTES = 64 * 1024
ID = r"^[A-Za-z0-9_-]{1,64}$"
Ref = Annotated[str, Field(max_length=128)]


class _Frame(BaseModel):
    # Unknown members are ignored so that clients may be newer than the server.
    model_config = ConfigDict(extra="ignore")
    ref: Ref | None = None


class AuthFrame(_Frame):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=8192)


class SendFrame(_Frame):
    type: Literal["send"]
    conv: str = Field(pattern=ID)
    client_msg_id: ClientMsgId
    body: str
    attachments: list[Attachment] | None = Field(default=None, max_length=10)
    reply_to: SeqRef | None = None


class SyncFrame(_Frame):
    type: Literal["sync"]
    positions: dict[Annotated[str, Field(pattern=ID)], Seq] = Field(max_length=1000)


class DeliveredFrame(_Frame):
    type: Literal["delivered"]
    conv: str = Field(pattern=ID)
    seq: Seq


class ReadFrame(_Frame):
    type: Literal["read"]
    conv: str = Field(pattern=ID)
    seq: Seq


class TypingFrame(_Frame):
    type: Literal["typing"]
    conv: str = Field(pattern=ID)


class PingFrame(_Frame):
    type: Literal["ping"]


ClientFrame = Annotated[
    AuthFrame | SendFrame | SyncFrame | DeliveredFrame | ReadFrame | TypingFrame | PingFrame,
    Field(discriminator="type"),
]
_client_adapter: TypeAdapter[Any] = TypeAdapter(ClientFrame)
CLIENT_TYPES = frozenset({"auth", "send", "sync", "delivered", "read", "typing", "ping"})


class FrameRejected(Exception):
    """A text frame that is not a JSON object with a string ``type``: close 4008."""


class FrameInvalid(ChatError):
    """A well-formed frame of unknown type or with bad fields: ``error`` ``invalid``."""

    def __init__(self, message: str, ref: str | None) -> None:
        super().__init__(ErrorCode.INVALID, message)
        self.ref = ref


def parse_client_frame(text: str | bytes) -> Any:
    """Parse and validate one client frame.

    Raises FrameRejected (close 4008) or FrameInvalid (error frame, stay open).
    """
    raw_len = len(text.encode() if isinstance(text, str) else text)
    if raw_len > MAX_FRAME_BYTES:
        raise FrameRejected("frame larger than 64 KiB")
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameRejected("malformed JSON") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise FrameRejected("a frame must be a JSON object with a string type")
    ref = obj.get("ref")
    ref = ref if isinstance(ref, str) and len(ref) <= 128 else None
    if obj["type"] not in CLIENT_TYPES:
        raise FrameInvalid(f"unknown frame type {obj['type'][:32]!r}", ref)
    try:
        return _client_adapter.validate_python(obj)
    except ValidationError as exc:
        raise FrameInvalid(_describe(exc), ref) from exc


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"][1:]) or "frame"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def error_frame(err: ChatError, ref: str | None = None, **extra: Any) -> str:
    d: dict[str, Any] = {"type": "error"}
    if ref is not None:
        d["ref"] = ref
    d.update(extra)
    d["code"] = str(err.code)
    d["message"] = err.message
    if err.retry_after_ms is not None:
        d["retry_after_ms"] = err.retry_after_ms
    return encode(d)


def event_frame_from_event_json(event_json: bytes) -> str:
    """Encode an event frame once from the bus payload; the same text goes to every recipient."""
    return '{"type":"event","event":' + event_json.decode() + "}"


# Close codes (PROTOCOL §4)
CLOSE_UNAUTHORIZED = 4001
CLOSE_TOKEN_EXPIRED = 4003
CLOSE_POLICY = 4008
CLOSE_SLOW_CONSUMER = 4009
CLOSE_SERVICE_RESTART = 1012
CLOSE_GOING_AWAY = 1001
