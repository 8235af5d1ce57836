"""Who may use which NATS subjects (hardening §4): no anonymous peer on the bus. Each service
connects as its own NATS user, and each user may publish and subscribe only to its own
subjects; everything else is denied by the server. This table is the one source: ``make
run``, the test clusters, compose and Kubernetes all render their NATS configuration from
``render_account``.

What it buys: only messages publishes events, only auth publishes revocations, only
gateways publish commands and make the user-facing RPC calls that carry a ``Chat-User``
identity header (messages and presence may call only the few internal ops they need), and
no service can subscribe to another service's requests or to ``>``. Each service's
replies come back on its own inbox prefix (``_INBOX_<service>``), which no other user may
subscribe to.

The ``ops`` user has every right, for operators' tools (stream inspection) and tests that
inject traffic as a misbehaving peer; services never use it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypedDict

from chat_proto import subjects as s

SERVICES = ("auth", "messages", "presence", "media", "search", "gateway")
OPS = "ops"


class Permissions(TypedDict):
    publish: list[str]
    subscribe: list[str]
    allow_responses: bool


def inbox_prefix(service: str) -> str:
    """Where a service's request replies and JetStream acknowledgements come back."""
    return f"_INBOX_{service}"


def _stream_admin(stream: str) -> list[str]:
    return [f"$JS.API.STREAM.{op}.{stream}" for op in ("INFO", "CREATE", "UPDATE")]


PERMISSIONS: dict[str, Permissions] = {
    "gateway": {
        "publish": [
            s.CMD_SEND_ALL,  # into CHAT_CMDS
            "svc.auth.>",
            "svc.messages.>",
            "svc.presence.>",
            "svc.media.>",
            "svc.search.>",  # RPC on behalf of its users
            s.EPH_CONV_ALL,  # typing frames
            s.PRESENCE_HB_ALL,  # presence reports
            *_stream_admin(s.CMD_STREAM),  # declares CHAT_CMDS before messages starts
        ],
        "subscribe": [
            s.EVT_CONV_ALL,
            s.EPH_CONV_ALL,
            s.USER_NOTIFY_ALL,
            s.USER_REVOKED_ALL,
            s.GATEWAY_RESULTS_ALL,
            f"{inbox_prefix('gateway')}.>",
        ],
        "allow_responses": False,
    },
    "auth": {
        "publish": [s.USER_REVOKED_ALL],
        "subscribe": ["svc.auth.>", f"{inbox_prefix('auth')}.>"],
        "allow_responses": True,
    },
    "messages": {
        "publish": [
            s.EVT_CONV_ALL,  # events, into CHAT_EVENTS
            s.EPH_CONV_ALL,  # receipt frames
            s.USER_NOTIFY_ALL,  # membership notices
            s.GATEWAY_RESULTS_ALL,  # command results
            s.auth_rpc("users_exist"),
            *_stream_admin(s.CMD_STREAM),
            *_stream_admin(s.EVT_STREAM),
            f"$JS.API.CONSUMER.CREATE.{s.CMD_STREAM}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{s.CMD_STREAM}.>",
            f"$JS.API.CONSUMER.INFO.{s.CMD_STREAM}.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{s.CMD_STREAM}.{s.MESSAGES_CONSUMER}",
            f"$JS.ACK.{s.CMD_STREAM}.>",
        ],
        "subscribe": ["svc.messages.>", f"{inbox_prefix('messages')}.>"],
        "allow_responses": True,
    },
    "presence": {
        "publish": [
            s.EPH_CONV_ALL,  # presence frames
            s.messages_rpc("internal.shared_with"),
            s.messages_rpc("internal.presence_convs"),
        ],
        "subscribe": [s.PRESENCE_HB_ALL, "svc.presence.>", f"{inbox_prefix('presence')}.>"],
        "allow_responses": True,
    },
    "media": {
        "publish": [
            s.messages_rpc("internal.readable"),
            # its durable consumer of CHAT_EVENTS (which uploads messages reference)
            f"$JS.API.STREAM.INFO.{s.EVT_STREAM}",
            f"$JS.API.CONSUMER.CREATE.{s.EVT_STREAM}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{s.EVT_STREAM}.>",
            f"$JS.API.CONSUMER.INFO.{s.EVT_STREAM}.{s.MEDIA_EVENTS_CONSUMER}",
            f"$JS.API.CONSUMER.MSG.NEXT.{s.EVT_STREAM}.{s.MEDIA_EVENTS_CONSUMER}",
            f"$JS.ACK.{s.EVT_STREAM}.{s.MEDIA_EVENTS_CONSUMER}.>",
        ],
        "subscribe": ["svc.media.>", f"{inbox_prefix('media')}.>"],
        "allow_responses": True,
    },
    "search": {
        "publish": [
            s.messages_rpc("internal.user_convs"),  # the caller's conversations (the filter)
            s.messages_rpc("internal.events"),  # the message an edit changes; a rebuild's reads
            s.messages_rpc("internal.all_convs"),  # a rebuild: every conversation
            # its durable consumer of CHAT_EVENTS (what it indexes)
            f"$JS.API.STREAM.INFO.{s.EVT_STREAM}",
            f"$JS.API.CONSUMER.CREATE.{s.EVT_STREAM}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{s.EVT_STREAM}.>",
            f"$JS.API.CONSUMER.INFO.{s.EVT_STREAM}.{s.SEARCH_EVENTS_CONSUMER}",
            f"$JS.API.CONSUMER.MSG.NEXT.{s.EVT_STREAM}.{s.SEARCH_EVENTS_CONSUMER}",
            f"$JS.ACK.{s.EVT_STREAM}.{s.SEARCH_EVENTS_CONSUMER}.>",
        ],
        "subscribe": ["svc.search.>", f"{inbox_prefix('search')}.>"],
        "allow_responses": True,
    },
}


def password_var(service: str) -> str:
    """The environment variable a deployed NATS server reads a service's password from."""
    return f"CHAT_NATS_{service.upper()}_PASSWORD"


def render_account(name: str, users: Mapping[str, tuple[str, str | None]]) -> str:
    """One ``accounts {}`` entry in nats-server's configuration: JetStream on, and for each
    service in ``users`` (``{service: (user, password)}``, plus ``ops``) its user with its
    permissions. A password of None is read by the server from the environment
    (``password_var``), which is how compose and Kubernetes give it. User names must be
    unique on the server (several accounts may share it)."""
    lines = [f"  {name}: {{", "    jetstream: enabled", "    users: ["]
    for service, (user, password) in users.items():
        secret = json.dumps(password) if password is not None else f"${password_var(service)}"
        entry = f'{{"user": {json.dumps(user)}, "password": {secret}'
        if service != OPS:
            p = PERMISSIONS[service]
            perms: dict[str, object] = {"publish": {"allow": p["publish"]}, "subscribe": {"allow": p["subscribe"]}}
            if p["allow_responses"]:
                perms["allow_responses"] = True
            entry += f', "permissions": {json.dumps(perms)}'
        lines.append(f"      {entry}}}")
    lines += ["    ]", "  }"]
    return "\n".join(lines)


def deployed_accounts() -> str:
    """``deploy/nats/accounts.conf``: the chat account with users ``chat-<service>`` whose
    passwords come from the server's environment."""
    users: dict[str, tuple[str, str | None]] = {svc: (f"chat-{svc}", None) for svc in (*SERVICES, OPS)}
    head = "# Generated by `python -m chat_proto.nats_permissions` from chat_proto/nats_permissions.py: do not edit.\n"
    return head + "accounts {\n" + render_account("CHAT", users) + "\n}\n"


if __name__ == "__main__":
    print(deployed_accounts(), end="")
