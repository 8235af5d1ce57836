"""The permission matrix: who may do what, in which kind of conversation.

ONE table (``MATRIX``), mirrored in ``docs/permissions.md`` (a unit test parses the page and
compares, so the two cannot drift). Columns:

- the actor: ``owner``, ``admin``, ``member``, ``guest`` (a member's role) or ``non_member``
  (someone who does not belong; only meaningful for a public channel: a non-member of a
  private channel, group or dm is told 404 whatever the action, no existence leak);
- the kind: ``public`` / ``private`` channel, ``group``, ``dm`` (the action applies to it at all);
- ``archived``: the action is still allowed while the conversation is archived (read-only).

The answer (``refusal``), checked in this order:
1. non-member of anything but a public channel → 404 ``not_found``;
2. the action does not apply to the kind (e.g. inviting into a dm) → 422 ``invalid``;
3. the actor's column says no → 403 ``forbidden``;
4. archived and the action is not allowed while archived → 403 ``forbidden``.

Rules on the target of an action (``member_change_refusal``): adding an ``admin`` needs the
``owner``; an ``owner`` cannot be added (transfer instead); removing needs outranking the
target; setting ``owner`` transfers ownership (the owner becomes ``admin``). Leaving and
joining are membership rules, not permissions (``leave_refusal``, ``join_refusal``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import ROLE_RANK

Action = Literal["read", "post", "invite", "remove", "change_roles", "rename", "archive", "delete_others"]
ACTIONS: tuple[Action, ...] = (
    "read",
    "post",
    "invite",
    "remove",
    "change_roles",
    "rename",
    "archive",
    "delete_others",
)
ACTORS = ("owner", "admin", "member", "guest", "non_member")
KINDS = ("public", "private", "group", "dm")


class Row(NamedTuple):
    owner: bool
    admin: bool
    member: bool
    guest: bool
    non_member: bool  # of a public channel
    public: bool
    private: bool
    group: bool
    dm: bool
    archived: bool


Y, N = True, False

# fmt: off
MATRIX: dict[Action, Row] = {
    #                     owner admin member guest non_member  public private group dm  archived
    "read":           Row(Y,    Y,    Y,     Y,    Y,          Y,     Y,      Y,    Y,  Y),
    "post":           Row(Y,    Y,    Y,     N,    N,          Y,     Y,      Y,    Y,  N),
    "invite":         Row(Y,    Y,    N,     N,    N,          Y,     Y,      Y,    N,  N),
    "remove":         Row(Y,    Y,    N,     N,    N,          Y,     Y,      Y,    N,  N),
    "change_roles":   Row(Y,    N,    N,     N,    N,          Y,     Y,      Y,    N,  N),
    "rename":         Row(Y,    Y,    N,     N,    N,          Y,     Y,      Y,    N,  N),
    "archive":        Row(Y,    Y,    N,     N,    N,          Y,     Y,      Y,    N,  Y),
    "delete_others":  Row(Y,    Y,    N,     N,    N,          Y,     Y,      Y,    Y,  N),
}
# fmt: on

_WHAT: dict[Action, str] = {
    "read": "read this conversation",
    "post": "post here",
    "invite": "add members",
    "remove": "remove members",
    "change_roles": "change roles",
    "rename": "change the name, topic or description",
    "archive": "archive or unarchive",
    "delete_others": "delete others' messages",
}


def kind_column(kind: str, private: bool) -> str:
    if kind == "channel":
        return "private" if private else "public"
    return kind


def hidden() -> ChatError:
    return ChatError(ErrorCode.NOT_FOUND, "no such conversation")


def archived_error() -> ChatError:
    return ChatError(ErrorCode.FORBIDDEN, "the conversation is archived (read-only)")


def refusal(action: Action, kind: str, private: bool, role: str | None, archived: bool = False) -> ChatError | None:
    """The error ``action`` gets from an actor with ``role`` (None: not a member), or None."""
    row = MATRIX[action]
    column = kind_column(kind, private)
    if role is None and column != "public":
        return hidden()
    if not getattr(row, column):
        return ChatError(ErrorCode.INVALID, f"a {kind} does not support this: {_WHAT[action]}")
    if role is None:
        if not row.non_member:
            return ChatError(ErrorCode.FORBIDDEN, f"join the channel first to {_WHAT[action]}")
    elif not getattr(row, role):
        return ChatError(ErrorCode.FORBIDDEN, f"a {role} may not {_WHAT[action]}")
    if archived and not row.archived:
        return archived_error()
    return None


def check(action: Action, kind: str, private: bool, role: str | None, archived: bool = False) -> None:
    err = refusal(action, kind, private, role, archived)
    if err is not None:
        raise err


def allowed(action: Action, kind: str, private: bool, role: str | None, archived: bool = False) -> bool:
    return refusal(action, kind, private, role, archived) is None


def outranks(actor_role: str, target_role: str) -> bool:
    return ROLE_RANK[actor_role] > ROLE_RANK[target_role]


def add_refusal(actor_role: str, new_role: str) -> ChatError | None:
    """After ``invite`` is allowed: may this actor add someone with ``new_role``?"""
    if new_role == "owner":
        return ChatError(ErrorCode.INVALID, "an owner cannot be added; transfer ownership instead")
    if new_role == "admin" and actor_role != "owner":
        return ChatError(ErrorCode.FORBIDDEN, "only the owner may add an admin")
    return None


def remove_refusal(actor_role: str, target_role: str) -> ChatError | None:
    """After ``remove`` is allowed: removing needs outranking the target."""
    if not outranks(actor_role, target_role):
        return ChatError(ErrorCode.FORBIDDEN, f"a {actor_role} may not remove a {target_role}")
    return None


def leave_refusal(kind: str, private: bool, role: str | None, last_owner: bool) -> ChatError | None:
    """Leaving (removing oneself): any member, also while archived; never a dm; never the
    last owner (409 until ownership is transferred)."""
    if role is None:
        return hidden() if kind_column(kind, private) != "public" else ChatError(ErrorCode.FORBIDDEN, "not a member")
    if kind == "dm":
        return ChatError(ErrorCode.INVALID, "a dm cannot be left")
    if role == "owner" and last_owner:
        return ChatError(ErrorCode.CONFLICT, "the last owner must transfer ownership first")
    return None


def join_refusal(kind: str, private: bool, archived: bool) -> ChatError | None:
    """Joining, for a non-member (a member joining again is a no-op): public channels only,
    not while archived."""
    if kind_column(kind, private) != "public":
        return hidden()
    if archived:
        return archived_error()
    return None
