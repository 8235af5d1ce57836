"""Relaying ``presence`` frames (from the conversation's ephemeral subject) to local members.

To the connections of members other than the user concerned, droppable under backpressure,
and never twice the same status for the same user on one connection: a user sharing many
conversations with a connection's user, or two presence replicas publishing the same
change, reach that connection once.
"""

from __future__ import annotations

from collections.abc import Mapping

from chat_gateway.connection import Connection
from chat_gateway.wire import OutFrame


def relay_presence(members: Mapping[str, set[Connection]], user: str, status: object, text: str | OutFrame) -> int:
    """Queue ``text`` to the connections that need it; returns how many."""
    if not isinstance(status, str):
        return 0
    n = 0
    for member, conns in members.items():
        if member == user:
            continue
        for c in conns:
            if c.presence_seen.get(user) == status:
                continue
            c.presence_seen[user] = status
            c.push_live(text, droppable=True)
            n += 1
    return n
