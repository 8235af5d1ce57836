"""docs/asyncapi.yaml: the WebSocket protocol as an AsyncAPI 3.0 document, held to the code.

1. The official parser (``@asyncapi/parser``, tools/asyncapi) accepts it with no error and
   no warning, and every example fits its schema (``node tools/asyncapi/validate.mjs``).
   Skipped when ``tools/asyncapi/node_modules`` (or node) is missing, a failure under
   ``CI=true``: ``npm ci --prefix tools/asyncapi --ignore-scripts`` installs it.
2. The document is exact, checked in Python against the models:
   - every client frame type ``chat_proto.frames`` accepts, and every server frame type the
     gateway writes (the typed ``ServerFrame``s, the relayed ephemeral frames, ``event``),
     is a message of the right direction; nothing else is;
   - client frame schemas match ``model_json_schema()`` both ways (required members, types,
     lengths, ranges, patterns, item and key bounds), and unknown members are not refused;
   - server frame schemas list exactly the members the models write, require those always
     written, and are at least as tight as the models;
   - the event object, its kinds, roles and attachments; error codes; close codes; limits;
   - every example is a frame the code accepts (client) or could have written (server).
   A frame type added to the code without the document fails here.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest
from chat_gateway.settings import GatewaySettings
from chat_proto import bounds, ephemeral, events
from chat_proto import frames as F
from chat_proto.errors import ErrorCode
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
TOOLS = ROOT / "tools" / "asyncapi"
VALIDATOR = TOOLS / "validate.mjs"
INSTALL = "npm ci --prefix tools/asyncapi --ignore-scripts"

# The keywords compared between the models' JSON Schema and the document.
CONSTRAINTS = (
    "const",
    "enum",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)
# Enforced by validators the models' JSON Schema cannot show; each is probed below.
VALIDATOR_ONLY = {("send", "attachments"): {"uniqueItems": True}}
# Answers each client frame type can get (PROTOCOL §4), as server frame types.
REPLIES = {
    "auth": {"auth_ok", "error"},
    "send": {"ack", "error"},
    "sync": {"event", "sync_done", "error"},
    "ping": {"pong", "error"},
}


def _required_tool(reason: str) -> None:
    """Skip here, fail under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: required; install with `{INSTALL}`)")
    pytest.skip(f"{reason}; install with `{INSTALL}`")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        _required_tool("node is not installed")
    if not (TOOLS / "node_modules" / "@asyncapi" / "parser").is_dir():
        _required_tool("tools/asyncapi/node_modules is missing")
    assert node is not None
    return node


# --- 1. the official parser -----------------------------------------------------------------


def test_the_official_parser_accepts_the_document() -> None:
    node = _node()
    proc = subprocess.run(
        [node, str(VALIDATOR), "--strict", str(DOC)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"validate.mjs exited {proc.returncode}:\n{out}"
    assert "OK: AsyncAPI 3.0.0" in proc.stdout, out


# --- loading and resolving ------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    try:
        import yaml
    except ImportError:  # not a declared dev dependency: js-yaml of tools/asyncapi instead
        yaml = None
    if yaml is not None:
        loaded = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    else:
        proc = subprocess.run(
            [_node(), str(VALIDATOR), "--print-json", str(DOC)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        loaded = json.loads(proc.stdout)
    assert isinstance(loaded, dict)
    return loaded


def _pointer(root: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local $refs are expected: {ref}"
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _deref(root: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _pointer(root, node["$ref"])
    return node


def _number(value: Any) -> Any:
    # int64 bounds do not survive a JavaScript round trip (the js-yaml fallback); compare as doubles
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > 2**53:
        return float(value)
    return value


def _norm(root: dict[str, Any], schema: Any) -> dict[str, Any]:
    """A schema as comparable facts: its JSON types and constraints (nested ones normalized);
    anyOf branches are merged (``X | None`` is the types {X, null} with X's constraints)."""
    s = _deref(root, schema)
    out: dict[str, Any] = {"types": set()}
    branches = s.get("anyOf") or s.get("oneOf")
    if branches:
        for b in branches:
            nb = _norm(root, b)
            out["types"] |= set(nb.pop("types"))
            out.update(nb)
    t = s.get("type")
    if isinstance(t, str):
        out["types"].add(t)
    elif isinstance(t, list):
        out["types"].update(t)
    for key in CONSTRAINTS:
        if key in s:
            out[key] = _number(s[key])
    if "items" in s:
        out["items"] = _norm(root, s["items"])
    # a map: pydantic writes patternProperties {P: V}; the document propertyNames + additionalProperties
    if "patternProperties" in s:
        ((pattern, value),) = s["patternProperties"].items()
        out["keys"], out["values"] = pattern, _norm(root, value)
    if "propertyNames" in s:
        out["keys"] = _deref(root, s["propertyNames"])["pattern"]
        out["values"] = _norm(root, s["additionalProperties"])
    out["types"] = sorted(out["types"])
    return out


def _fields(root: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    s = _deref(root, schema)
    return {k: _norm(root, v) for k, v in s.get("properties", {}).items()}, set(s.get("required", []))


def _frame_type(doc: dict[str, Any], message: dict[str, Any]) -> str:
    payload = _deref(doc, _deref(doc, message)["payload"])
    return str(_deref(doc, payload["properties"]["type"])["const"])


def _directions(doc: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(client frame type -> message, server frame type -> message), from the operations:
    the document describes the gateway, so it receives client frames and sends the rest."""
    client: dict[str, dict[str, Any]] = {}
    server: dict[str, dict[str, Any]] = {}
    for op in doc["operations"].values():
        own = [_deref(doc, m) for m in op["messages"]]
        replies = [_deref(doc, m) for m in op.get("reply", {}).get("messages", [])]
        (client if op["action"] == "receive" else server).update({_frame_type(doc, m): m for m in own})
        server.update({_frame_type(doc, m): m for m in replies})
    return client, server


def _server_frame_models() -> dict[str, type[BaseModel]]:
    """Every typed server frame: ``ServerFrame`` subclasses and the relayed ephemeral frames."""
    out: dict[str, type[BaseModel]] = {}
    todo = list(F.ServerFrame.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__ == F.__name__:
            out[cls.model_fields["type"].default] = cls
    for _, cls in inspect.getmembers(ephemeral, inspect.isclass):
        if issubclass(cls, BaseModel) and cls is not BaseModel and "type" in cls.model_fields:
            out[cls.model_fields["type"].default] = cls
    return out


def _client_frame_models() -> dict[str, type[BaseModel]]:
    union = typing.get_args(F.ClientFrame)[0]
    return {cls.model_fields["type"].annotation.__args__[0]: cls for cls in typing.get_args(union)}


def _message_schema(doc: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = _deref(doc, _deref(doc, message)["payload"])
    return schema


# --- 2. frame types -------------------------------------------------------------------------


def test_every_client_frame_type_is_a_received_message(doc: dict[str, Any]) -> None:
    client, _ = _directions(doc)
    models = _client_frame_models()
    assert set(models) == set(F.CLIENT_TYPES), "chat_proto.frames: ClientFrame and CLIENT_TYPES disagree"
    assert set(client) == set(F.CLIENT_TYPES), "docs/asyncapi.yaml: receive operations vs the client frame types"


def test_every_server_frame_type_is_a_sent_message(doc: dict[str, Any]) -> None:
    _, server = _directions(doc)
    event_type = json.loads(F.event_frame_from_event_json(b"{}"))["type"]
    written = set(_server_frame_models()) | set(ephemeral.RELAYED) | {event_type}
    assert set(server) == written, "docs/asyncapi.yaml: send operations and replies vs the frames the gateway writes"


def test_the_channel_holds_exactly_the_messages_of_the_operations(doc: dict[str, Any]) -> None:
    client, server = _directions(doc)
    (channel,) = doc["channels"].values()
    assert channel["address"] == "/ws"
    assert '@app.websocket("/ws")' in (ROOT / "services/gateway/src/chat_gateway/main.py").read_text()
    in_channel = [_deref(doc, m) for m in channel["messages"].values()]
    used = list(client.values()) + list(server.values())
    assert sorted(map(id, in_channel)) == sorted(map(id, used))
    assert set(doc["components"]["messages"]) == set(channel["messages"])


def test_replies(doc: dict[str, Any]) -> None:
    for op in doc["operations"].values():
        if op["action"] != "receive":
            continue
        (frame,) = [_frame_type(doc, m) for m in op["messages"]]
        got = {_frame_type(doc, m) for m in op.get("reply", {}).get("messages", [])}
        assert got == REPLIES.get(frame, set()), f"replies to {frame}"


# --- 2. schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("frame", sorted(F.CLIENT_TYPES))
def test_client_frame_schema_matches_the_model(doc: dict[str, Any], frame: str) -> None:
    model = _client_frame_models()[frame]
    ours = model.model_json_schema()
    want, want_req = _fields(ours, ours)
    client, _ = _directions(doc)
    schema = _message_schema(doc, client[frame])
    got, got_req = _fields(doc, schema)
    assert got_req == want_req, f"{frame}: required members"
    assert set(got) == set(want), f"{frame}: members"
    for name, facts in want.items():
        facts = {**facts, **VALIDATOR_ONLY.get((frame, name), {})}
        assert got[name] == facts, f"{frame}.{name}"
    # unknown members are ignored, not refused (newer clients): the document must not refuse them
    assert model.model_config.get("extra") == "ignore"
    assert schema.get("additionalProperties", True) is not False, f"{frame}: additionalProperties"


def test_validator_only_constraints_are_real() -> None:
    dup = {"type": "send", "conv": "c", "client_msg_id": "m", "body": "", "attachments": ["a", "a"]}
    with pytest.raises(F.FrameInvalid):
        F.parse_client_frame(json.dumps(dup))
    assert F.parse_client_frame('{"type":"ping","unknown":1}').type == "ping"


def _server_nullable_dropped(model: type[BaseModel]) -> bool:
    """ServerFrames are written with exclude_none (an optional member is absent, never null);
    the ephemeral frames are written whole."""
    return issubclass(model, F.ServerFrame)


def _at_least_as_tight(got: dict[str, Any], want: dict[str, Any], where: str) -> None:
    assert got["types"] == want["types"], f"{where}: types"
    for key, value in want.items():
        if key == "types":
            continue
        if isinstance(value, dict):
            _at_least_as_tight(got[key], value, f"{where}.{key}")
        else:
            assert got.get(key) == value, f"{where}: {key}"


@pytest.mark.parametrize("frame", sorted(_server_frame_models()))
def test_server_frame_schema_matches_the_model(doc: dict[str, Any], frame: str) -> None:
    model = _server_frame_models()[frame]
    ours = model.model_json_schema()
    want, _ = _fields(ours, ours)
    _, server = _directions(doc)
    got, got_req = _fields(doc, _message_schema(doc, server[frame]))
    assert set(got) == set(want), f"{frame}: members (the model writes exactly these)"
    drop_null = _server_nullable_dropped(model)
    always = {
        name
        for name, field in model.model_fields.items()
        if not drop_null or field.is_required() or field.default is not None
    }
    assert got_req == always, f"{frame}: required = the members always written"
    for name, facts in want.items():
        if drop_null and not model.model_fields[name].is_required() and model.model_fields[name].default is None:
            facts = {**facts, "types": [t for t in facts["types"] if t != "null"]}
        _at_least_as_tight(got[name], facts, f"{frame}.{name}")


def test_error_codes(doc: dict[str, Any]) -> None:
    _, server = _directions(doc)
    code = _norm(doc, _message_schema(doc, server["error"])["properties"]["code"])
    assert code["enum"] == [c.value for c in ErrorCode]


def test_event_object_matches_the_model(doc: dict[str, Any]) -> None:
    _, server = _directions(doc)
    frame = _message_schema(doc, server["event"])
    assert set(frame["properties"]) == {"type", "event"}
    assert set(frame["required"]) == {"type", "event"}
    event = _deref(doc, frame["properties"]["event"])
    ours = events.Event.model_json_schema()
    want, want_req = _fields(ours, ours)
    got, got_req = _fields(doc, event)
    assert set(got) == set(want)
    assert got_req == want_req
    assert got["kind"]["enum"] == list(typing.get_args(events.EventKind))
    assert got["role"]["enum"] == list(events.ROLES)
    # deleted messages (and their edits) are written with body and attachments null
    assert "null" in got["body"]["types"] and "null" in got["attachments"]["types"]
    attachment = _deref(doc, _deref(doc, event["properties"]["attachments"])["items"])
    a_ours = events.Attachment.model_json_schema()
    a_want, a_req = _fields(a_ours, a_ours)
    a_got, a_got_req = _fields(doc, attachment)
    # the gateway adds url (always) and thumbnail_url (images), signed per reader
    assert set(a_got) == set(a_want) | {"url", "thumbnail_url"}
    assert a_got_req == a_req | {"url"}
    for name, facts in a_want.items():
        facts = {**facts, "types": [t for t in facts["types"] if t != "null"]}  # written with exclude_none
        _at_least_as_tight(a_got[name], facts, f"attachment.{name}")
    changes = _deref(doc, event["properties"]["changes"])
    assert set(changes["properties"]) == set(events.ConversationChanges.model_fields)


def test_seq_bounds(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["Seq"]["minimum"] == 0 and schemas["Seq"]["maximum"] == bounds.MAX_SEQ
    assert schemas["EventSeq"]["minimum"] == 1 and schemas["EventSeq"]["maximum"] == bounds.MAX_SEQ


# --- 2. close codes, limits, examples -------------------------------------------------------


def test_close_codes(doc: dict[str, Any]) -> None:
    (channel,) = doc["channels"].values()
    documented = {c["code"] for c in channel["x-close-codes"]}
    in_code = {v for k, v in vars(F).items() if k.startswith("CLOSE_")}
    assert in_code <= documented, f"close codes of chat_proto.frames missing: {in_code - documented}"
    assert {1000, 1009, 1011} <= documented  # the WebSocket layer's own (uvicorn, websockets)


def _default(name: str) -> Any:
    return GatewaySettings.model_fields[name].default


def test_limits_are_the_defaults(doc: dict[str, Any]) -> None:
    (channel,) = doc["channels"].values()
    lim = channel["x-limits"]
    assert lim["max_frame_bytes"] == F.MAX_FRAME_BYTES == _default("max_frame_bytes")
    for key in (
        "ws_max_message_bytes",
        "auth_timeout_s",
        "heartbeat_s",
        "max_connections_per_user",
        "max_inflight_frames",
        "queue_max_frames",
        "queue_max_bytes",
        "send_timeout_s",
        "sync_max_events",
        "sync_max_bytes",
        "typing_interval_s",
        "typing_expires_ms",
        "receipt_window_s",
    ):
        assert lim[key] == _default(key), key
    assert lim["sync_max_conversations"] == F.SyncFrame.model_json_schema()["properties"]["positions"]["maxProperties"]
    rates = lim["rate_limits"]
    for kind in ("frames", "send", "typing", "receipt"):
        assert (rates[kind]["burst"], rates[kind]["per_s"]) == (
            _default(f"rate_{kind}_burst"),
            _default(f"rate_{kind}_per_s"),
        ), kind
    assert (rates["abuse"]["errors"], rates["abuse"]["window_s"]) == (
        _default("rate_abuse_errors"),
        _default("rate_abuse_window_s"),
    )
    assert rates["abuse"]["close"] == F.CLOSE_POLICY


def test_examples_are_real_frames(doc: dict[str, Any]) -> None:
    client, server = _directions(doc)
    typed = _server_frame_models()
    seen = 0
    for frame, message in client.items():
        for ex in message.get("examples", []):
            parsed = F.parse_client_frame(json.dumps(ex["payload"]))
            assert parsed.type == frame
            seen += 1
    for frame, message in server.items():
        for ex in message.get("examples", []):
            payload = ex["payload"]
            if frame == "event":
                assert set(payload) == {"type", "event"}
                events.Event.model_validate(payload["event"])
            else:
                model = typed[frame]
                assert model.model_validate(payload).model_dump(exclude_none=_server_nullable_dropped(model)) == payload
            seen += 1
    assert seen >= len(client) + len(server), "every message has an example"
