"""The ONLY place NATS subject names are built.

Ids embedded in subjects are validated against ``ID_PATTERN`` first, so a
client-supplied id can never inject tokens (``.``, ``*``, ``>``) into a subject.
"""

from __future__ import annotations

import re

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID_RE = re.compile(ID_PATTERN)

# Streams
CMD_STREAM = "CHAT_CMDS"
CMD_SUBJECTS = "chat.cmd.>"
EVT_STREAM = "CHAT_EVENTS"
EVT_SUBJECTS = "chat.evt.conv.>"

# Durable consumer names
MESSAGES_CONSUMER = "messages-writer"

# Queue groups for RPC services
AUTH_QUEUE = "svc-auth"
MESSAGES_QUEUE = "svc-messages"
PRESENCE_QUEUE = "svc-presence"
MEDIA_QUEUE = "svc-media"
SEARCH_QUEUE = "svc-search"


def check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise ValueError(f"invalid id {value!r}")
    return value


def cmd_send(conv: str) -> str:
    return f"chat.cmd.send.{check_id(conv)}"


def evt_conv(conv: str) -> str:
    return f"chat.evt.conv.{check_id(conv)}"


def conv_from_evt_subject(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


def eph_conv(conv: str) -> str:
    """Ephemeral per-conversation frames (receipts, typing); core NATS, never stored.

    Outside ``EVT_SUBJECTS`` on purpose: the events stream must not capture them. Gateways
    subscribe to it next to ``evt_conv`` for every conversation they serve."""
    return f"chat.eph.conv.{check_id(conv)}"


def user_notify(user: str) -> str:
    """Per-user notices to gateways (membership changes); core NATS."""
    return f"chat.notify.user.{check_id(user)}"


def user_revoked(user: str) -> str:
    """A user's tokens were revoked (account deactivated): auth -> every gateway; core NATS."""
    return f"chat.user.revoked.{check_id(user)}"


# What gateways subscribe to: every user's revocations.
USER_REVOKED_ALL = "chat.user.revoked.*"


def presence_hb(gateway_id: str) -> str:
    """A gateway's presence reports (full heartbeats, deltas, bye): gateway -> every
    presence replica (no queue group); core NATS, ``chat_proto.presence``."""
    return f"chat.presence.hb.{check_id(gateway_id)}"


# What presence replicas subscribe to: every gateway's reports.
PRESENCE_HB_ALL = "chat.presence.hb.*"


def gateway_results(gateway_id: str) -> str:
    """Where the messages service answers commands a gateway published."""
    return f"chat.gw.{check_id(gateway_id)}.results"


def auth_rpc(op: str) -> str:
    return f"svc.auth.{op}"


def messages_rpc(op: str) -> str:
    return f"svc.messages.{op}"


def presence_rpc(op: str) -> str:
    return f"svc.presence.{op}"


def media_rpc(op: str) -> str:
    return f"svc.media.{op}"


def search_rpc(op: str) -> str:
    return f"svc.search.{op}"


# Wildcards of the per-id subjects above (subscriptions and NATS permissions).
CMD_SEND_ALL = "chat.cmd.send.*"
EVT_CONV_ALL = "chat.evt.conv.*"
EPH_CONV_ALL = "chat.eph.conv.*"
USER_NOTIFY_ALL = "chat.notify.user.*"
GATEWAY_RESULTS_ALL = "chat.gw.*.results"

AUTH_RPC_ALL = "svc.auth.*"
MESSAGES_RPC_ALL = "svc.messages.*"
PRESENCE_RPC_ALL = "svc.presence.*"
MEDIA_RPC_ALL = "svc.media.*"
# The media service's durable consumer of CHAT_EVENTS (which uploads messages reference).
MEDIA_EVENTS_CONSUMER = "media-refs"
# The search service's durable consumer of CHAT_EVENTS (what it indexes).
SEARCH_EVENTS_CONSUMER = "search-index"
