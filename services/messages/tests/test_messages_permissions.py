"""The permission table: the code equals docs/permissions.md, and it gives PROTOCOL §2's answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_messages import permissions as perm
from chat_messages.permissions import ACTIONS, MATRIX, Row, refusal
from chat_proto.errors import ChatError, ErrorCode

DOC = Path(__file__).resolve().parents[3] / "docs" / "permissions.md"
COLUMN = {
    "owner": "owner",
    "admin": "admin",
    "member": "member",
    "guest": "guest",
    "non-member": "non_member",
    "public channel": "public",
    "private channel": "private",
    "group": "group",
    "dm": "dm",
    "while archived": "archived",
}


def doc_matrix() -> dict[str, Row]:
    """The table under '## The matrix' whose header starts with '| action |'."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| action | owner"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    out: dict[str, Row] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        assert all(c in ("yes", "no") for c in cells[1:]), line
        values = {COLUMN[h]: c == "yes" for h, c in zip(header[1:], cells[1:], strict=True)}
        out[cells[0].strip("`")] = Row(**values)
    return out


def test_docs_table_equals_code_table() -> None:
    assert doc_matrix() == MATRIX
    assert list(doc_matrix()) == list(ACTIONS)


def code_of(err: ChatError | None) -> str | None:
    return None if err is None else str(err.code)


def code(action: perm.Action, kind: str, private: bool, role: str | None, archived: bool = False) -> str | None:
    return code_of(refusal(action, kind, private, role, archived))


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize(("kind", "private"), [("channel", True), ("group", True), ("dm", True)])
def test_non_members_of_anything_private_get_404_for_everything(action: perm.Action, kind: str, private: bool) -> None:
    assert code(action, kind, private, None) == ErrorCode.NOT_FOUND
    assert code(action, kind, private, None, archived=True) == ErrorCode.NOT_FOUND


@pytest.mark.parametrize("action", ACTIONS)
def test_non_members_of_a_public_channel_read_only(action: perm.Action) -> None:
    assert code(action, "channel", False, None) == (None if action == "read" else ErrorCode.FORBIDDEN)


def test_protocol_answers() -> None:
    assert code("post", "channel", False, "guest") == ErrorCode.FORBIDDEN  # guests read, not post
    assert code("read", "channel", True, "guest") is None
    assert code("invite", "channel", False, "member") == ErrorCode.FORBIDDEN  # admin+
    assert code("invite", "group", True, "admin") is None
    assert code("invite", "dm", True, "member") == ErrorCode.INVALID  # a dm → 422
    assert code("change_roles", "channel", False, "admin") == ErrorCode.FORBIDDEN  # owner only
    assert code("change_roles", "group", True, "owner") is None
    assert code("remove", "channel", True, "admin") is None
    assert code("rename", "dm", True, "member") == ErrorCode.INVALID
    assert code("archive", "dm", True, "member") == ErrorCode.INVALID
    assert code("delete_others", "dm", True, "member") == ErrorCode.FORBIDDEN


@pytest.mark.parametrize("action", ACTIONS)
def test_archived_is_read_only_for_everyone(action: perm.Action) -> None:
    stays = {"read", "archive"}
    for role in ("owner", "admin", "member", "guest"):
        got = code(action, "channel", False, role, archived=True)
        if action in stays:
            assert got == code(action, "channel", False, role), (action, role)
        else:
            assert got == ErrorCode.FORBIDDEN, (action, role)
    err = refusal("post", "group", True, "owner", archived=True)
    assert err is not None and "archived" in err.message


def test_target_rules() -> None:
    assert perm.add_refusal("owner", "admin") is None
    assert code_of(perm.add_refusal("admin", "admin")) == ErrorCode.FORBIDDEN
    assert code_of(perm.add_refusal("owner", "owner")) == ErrorCode.INVALID
    assert perm.add_refusal("admin", "guest") is None
    assert perm.remove_refusal("admin", "member") is None
    assert code_of(perm.remove_refusal("admin", "admin")) == ErrorCode.FORBIDDEN
    assert code_of(perm.remove_refusal("admin", "owner")) == ErrorCode.FORBIDDEN
    assert perm.remove_refusal("owner", "admin") is None


def test_leave_and_join() -> None:
    assert perm.leave_refusal("channel", False, "member", last_owner=False) is None
    assert code_of(perm.leave_refusal("channel", False, "owner", last_owner=True)) == ErrorCode.CONFLICT
    assert perm.leave_refusal("channel", False, "owner", last_owner=False) is None
    assert code_of(perm.leave_refusal("dm", True, "member", last_owner=False)) == ErrorCode.INVALID
    assert code_of(perm.leave_refusal("group", True, None, last_owner=False)) == ErrorCode.NOT_FOUND
    assert code_of(perm.leave_refusal("channel", False, None, last_owner=False)) == ErrorCode.FORBIDDEN
    assert perm.join_refusal("channel", False, archived=False) is None
    assert code_of(perm.join_refusal("channel", False, archived=True)) == ErrorCode.FORBIDDEN
    for kind, private in (("channel", True), ("group", True), ("dm", True)):
        assert code_of(perm.join_refusal(kind, private, archived=False)) == ErrorCode.NOT_FOUND
