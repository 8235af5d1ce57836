"""WebSocket frames (PROTOCOL §4). Client frames are discriminated on ``type``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from chat_proto.bounds import ClientMsgId, Seq, SeqRef
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.media_api import AttachmentIds

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
    # ids of the sender's uploads (1..10, unique); the body may then be empty
    attachments: AttachmentIds | None = None
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


# --- server frames (PROTOCOL §4) ----------------------------------------------------------
# Each answer the gateway writes is one of these models; ``text()`` is what goes on the wire
# (``ref`` only when the client's frame had one). Events are the exception on the hot path:
# ``event_frame_from_event_json`` wraps the bus payload's bytes without decoding them.


class ServerFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: Ref | None = None

    def text(self) -> str:
        return orjson.dumps(self.model_dump(exclude_none=True)).decode()


class AuthOk(ServerFrame):
    type: Literal["auth_ok"] = "auth_ok"
    user_id: str
    session_id: str
    heartbeat_s: float


class Ack(ServerFrame):
    type: Literal["ack"] = "ack"
    conv: str
    client_msg_id: str
    seq: int
    ts: str


class SyncDone(ServerFrame):
    type: Literal["sync_done"] = "sync_done"
    truncated: list[str]
    not_found: list[str]


class Pong(ServerFrame):
    type: Literal["pong"] = "pong"


class ErrorOut(ServerFrame):
    type: Literal["error"] = "error"
    conv: str | None = None
    client_msg_id: str | None = None
    code: ErrorCode
    message: str
    retry_after_ms: int | None = None


def error_frame(err: ChatError, ref: str | None = None, **extra: Any) -> str:
    """The ``error`` answer to a frame (``extra``: ``conv``, ``client_msg_id`` of a send)."""
    return ErrorOut(
        ref=ref, code=ErrorCode(err.code), message=err.message, retry_after_ms=err.retry_after_ms, **extra
    ).text()


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
