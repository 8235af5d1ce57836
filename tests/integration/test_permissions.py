"""Every action by every actor on every kind answers as the permission table says.

Table-driven through real processes (one cluster per backend for the whole module): for each
conversation kind (public channel, private channel, group, dm) x actor (owner, admin, member,
guest, non-member) x action, the HTTP status must be what ``chat_messages.permissions``
predicts (join and leave: what PROTOCOL §2 says), and a refused action must change nothing
(the conversation's last_seq, members, name, topic, description and archived state, as its
owner sees them). The same again on an archived conversation. A successful action that would
spoil the next case (removing, inviting, changing roles, archiving, leaving, joining) runs on
a freshly built conversation.

IDOR: a non-member's WebSocket ``send`` to a private conversation, ``sync`` with foreign ids,
the object and member list, history, rename and archive of a foreign conversation — refused,
nothing stored, no events delivered; a client-supplied ``sender`` is ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from chat_devtools.cluster import Cluster
from chat_messages import permissions as perm
from helpers.chat_client import Api, User
from helpers.peer import Peer, users

KINDS = ["public", "private", "group", "dm"]
ROLE_ACTORS = ["owner", "admin", "member", "guest", "non_member"]
TABLE_ACTIONS: dict[str, tuple[perm.Action, int]] = {  # test action -> (table row, status when allowed)
    "history": ("read", 200),
    "get": ("read", 200),
    "post": ("post", 201),
    "invite": ("invite", 200),
    "remove": ("remove", 204),
    "change_role": ("change_roles", 200),
    "rename": ("rename", 200),
    "archive": ("archive", 200),
}
ACTIONS = [*TABLE_ACTIONS, "join", "leave"]
SPOILERS = {"invite", "remove", "change_role", "archive", "leave", "join"}


@dataclass
class Cast:
    owner: User
    admin: User
    member: User
    guest: User
    victim: User  # a plain member others try to remove or demote
    outsider: User
    newcomer: User  # someone to invite

    def actor(self, name: str) -> User:
        return self.outsider if name == "non_member" else getattr(self, name)  # type: ignore[no-any-return]


async def build(api: Api, cast: Cast, kind: str, archived: bool = False) -> str:
    """A conversation with the cast in their roles (a dm: member + victim)."""
    if kind == "dm":
        return str((await api.create(cast.member, "dm", [cast.victim]))["id"])
    extra: dict[str, Any] = {}
    if kind != "group":
        extra = {"name": f"perm {uuid.uuid4().hex[:12]}", "private": kind == "private"}
    api_kind = "group" if kind == "group" else "channel"
    others = [cast.admin, cast.member, cast.guest, cast.victim]
    conv = str((await api.create(cast.owner, api_kind, others, **extra))["id"])
    for user, role in ((cast.admin, "admin"), (cast.guest, "guest")):
        r = await api.http.put(
            f"/v1/conversations/{conv}/members/{user.id}/role", headers=cast.owner.headers, json={"role": role}
        )
        assert r.status_code == 200, r.text
    if archived:
        r = await api.http.post(f"/v1/conversations/{conv}/archive", headers=cast.owner.headers)
        assert r.status_code == 200 and r.json()["archived"] is True, r.text
    return conv


async def snapshot(api: Api, cast: Cast, kind: str, conv: str) -> dict[str, Any]:
    viewer = cast.victim if kind == "dm" else cast.owner
    r = await api.http.get(f"/v1/conversations/{conv}", headers=viewer.headers)
    assert r.status_code == 200, r.text
    o = r.json()
    keep = ("last_seq", "name", "topic", "description", "archived")
    return {**{k: o[k] for k in keep}, "members": sorted((m["user_id"], m["role"]) for m in o["members"])}


def do(api: Api, cast: Cast, action: str, who: User, conv: str) -> Awaitable[httpx.Response]:
    base, h = f"/v1/conversations/{conv}", who.headers
    calls: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
        "history": lambda: api.history(who, conv),
        "get": lambda: api.http.get(base, headers=h),
        "post": lambda: api.send(who, conv, f"hello from {who.username}"),
        "invite": lambda: api.http.post(f"{base}/members", headers=h, json={"user_id": cast.newcomer.id}),
        "remove": lambda: api.http.delete(f"{base}/members/{cast.victim.id}", headers=h),
        "change_role": lambda: api.http.put(f"{base}/members/{cast.victim.id}/role", headers=h, json={"role": "guest"}),
        "rename": lambda: api.http.patch(base, headers=h, json={"topic": f"topic {uuid.uuid4().hex[:8]}"}),
        "archive": lambda: api.http.post(f"{base}/archive", headers=h),
        "join": lambda: api.http.post(f"{base}/join", headers=h),
        "leave": lambda: api.http.delete(f"{base}/members/{who.id}", headers=h),
    }
    return calls[action]()


def expected(action: str, kind: str, actor: str, archived: bool) -> int:
    """The status the table predicts (join/leave: PROTOCOL §2 and docs/permissions.md)."""
    api_kind, private = ("channel", kind == "private") if kind in ("public", "private") else (kind, True)
    role = None if actor == "non_member" else ("member" if kind == "dm" else actor)
    hidden = role is None and kind != "public"
    if action == "join":
        if role is not None:
            return 200  # already a member: no-op
        return 404 if hidden else (403 if archived else 200)
    if action == "leave":
        if role is None:
            return 404 if hidden else 403
        return 422 if kind == "dm" else (409 if role == "owner" else 204)
    row, ok = TABLE_ACTIONS[action]
    err = perm.refusal(row, api_kind, private, role, archived)
    return ok if err is None else err.status


def changed_as_expected(action: str, before: dict[str, Any], after: dict[str, Any], cast: Cast, who: User) -> bool:
    members = dict(after["members"])
    if action in ("history", "get", "join", "archive") and before["archived"]:
        return after == before  # reads, no-op joins and re-archiving change nothing
    checks = {
        "history": after == before,
        "get": after == before,
        "post": after["last_seq"] == before["last_seq"] + 1,
        "invite": members.get(cast.newcomer.id) == "member",
        "remove": cast.victim.id not in members,
        "change_role": members.get(cast.victim.id) == "guest",
        "rename": after["topic"] != before["topic"] and after["last_seq"] == before["last_seq"] + 1,
        "archive": after["archived"] is True,
        "join": who.id in members,
        "leave": who.id not in members,
    }
    if action == "join" and who.id in dict(before["members"]):
        return after == before
    return checks[action]


async def make_cast(api: Api) -> Cast:
    return Cast(*await users(api, "owner", "admin", "member", "guest", "victim", "outsider", "newcomer"))


async def run_matrix(api: Api, kind: str, archived: bool) -> list[str]:
    cast = await make_cast(api)
    shared = await build(api, cast, kind, archived)
    actors = ["member", "non_member"] if kind == "dm" else ROLE_ACTORS
    problems: list[str] = []
    for actor in actors:
        who = cast.actor(actor)
        for action in ACTIONS:
            want = expected(action, kind, actor, archived)
            fresh = want < 300 and action in SPOILERS and not (action == "join" and actor != "non_member")
            if fresh and kind == "dm":  # one dm per pair: a new pair
                cast = await make_cast(api)
                who = cast.actor(actor)
            conv = await build(api, cast, kind, archived) if fresh else shared
            before = await snapshot(api, cast, kind, conv)
            r = await do(api, cast, action, who, conv)
            after = await snapshot(api, cast, kind, conv)
            case = f"{kind}{' (archived)' if archived else ''} {actor} {action}"
            if r.status_code != want:
                problems.append(f"{case}: {r.status_code} != {want}: {r.text[:200]}")
            elif want >= 400:
                if after != before:
                    problems.append(f"{case}: refused ({want}) but changed: {before} -> {after}")
                if r.headers.get("content-type", "").split(";")[0] != "application/problem+json":
                    problems.append(f"{case}: not problem+json: {r.headers.get('content-type')}")
            elif not changed_as_expected(action, before, after, cast, who):
                problems.append(f"{case}: allowed but the change is not as expected: {before} -> {after}")
    return problems


@pytest.mark.parametrize("kind", KINDS)
async def test_every_action_answers_as_the_table_says(module_cluster: Cluster, kind: str) -> None:
    async with Api(module_cluster.gateway_url) as api:
        problems = await run_matrix(api, kind, archived=False)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("kind", ["public", "private", "group"])
async def test_every_action_on_an_archived_conversation(module_cluster: Cluster, kind: str) -> None:
    async with Api(module_cluster.gateway_url) as api:
        problems = await run_matrix(api, kind, archived=True)
    assert problems == [], "\n".join(problems)


async def test_target_rules_through_the_api(module_cluster: Cluster) -> None:
    """Adding an admin needs the owner; an owner cannot be added; removing needs outranking;
    a name for a group or dm → 422."""
    async with Api(module_cluster.gateway_url) as api:
        cast = await make_cast(api)
        conv = await build(api, cast, "private")
        base = f"/v1/conversations/{conv}"
        before = await snapshot(api, cast, "private", conv)
        r = await api.http.post(
            f"{base}/members", headers=cast.admin.headers, json={"user_id": cast.newcomer.id, "role": "admin"}
        )
        assert r.status_code == 403, r.text
        r = await api.http.post(
            f"{base}/members", headers=cast.owner.headers, json={"user_id": cast.newcomer.id, "role": "owner"}
        )
        assert r.status_code == 422, r.text
        r = await api.http.put(
            f"{base}/members/{cast.victim.id}/role", headers=cast.owner.headers, json={"role": "admin"}
        )
        assert r.status_code == 200, r.text
        before = await snapshot(api, cast, "private", conv)
        for target in (cast.owner, cast.victim):  # an admin does not outrank the owner or an admin
            r = await api.http.delete(f"{base}/members/{target.id}", headers=cast.admin.headers)
            assert r.status_code == 403, r.text
        r = await api.http.put(
            f"{base}/members/{cast.owner.id}/role", headers=cast.owner.headers, json={"role": "admin"}
        )
        assert r.status_code == 409, r.text  # the last owner names a new owner first
        assert await snapshot(api, cast, "private", conv) == before
        group = await build(api, cast, "group")
        dm = await build(api, cast, "dm")
        for c, who in ((group, cast.owner), (dm, cast.member)):
            r = await api.http.patch(f"/v1/conversations/{c}", headers=who.headers, json={"name": "named"})
            assert r.status_code == 422, r.text
        r = await api.http.post(
            f"{base}/members", headers=cast.owner.headers, json={"user_id": cast.newcomer.id, "role": "admin"}
        )
        assert r.status_code == 200, r.text
        r = await api.http.delete(f"{base}/members/{cast.guest.id}", headers=cast.admin.headers)
        assert r.status_code == 204, r.text


async def test_idor_non_member_gets_nothing(module_cluster: Cluster) -> None:
    url, ws_url = module_cluster.gateway_url, module_cluster.ws_urls[0]
    async with Api(url) as api:
        cast = await make_cast(api)
        private = await build(api, cast, "private")
        group = await build(api, cast, "group")
        dm = await build(api, cast, "dm")
        mine = str((await api.create(cast.outsider, "dm", [cast.owner]))["id"])
        foreign = [private, group, dm]
        before = {c: await snapshot(api, cast, k, c) for c, k in zip(foreign, ("private", "group", "dm"), strict=True)}
        po = await Peer.connect(ws_url, cast.outsider)
        for conv in foreign:
            f = await po.send_msg(conv, "let me in", "idor-1", sender=cast.owner.id)
            assert (f["type"], f.get("code"), f.get("conv")) == ("error", "not_found", conv), f
            for r in (
                await api.http.get(f"/v1/conversations/{conv}", headers=cast.outsider.headers),
                await api.history(cast.outsider, conv),
                await api.http.patch(f"/v1/conversations/{conv}", headers=cast.outsider.headers, json={"topic": "x"}),
                await api.http.post(f"/v1/conversations/{conv}/archive", headers=cast.outsider.headers),
                await api.http.post(
                    f"/v1/conversations/{conv}/members",
                    headers=cast.outsider.headers,
                    json={"user_id": cast.outsider.id},
                ),
            ):
                assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
        done = await po.call({"type": "sync", "ref": "s", "positions": {private: 0, group: 0, dm: 0, mine: 0}})
        assert done["type"] == "sync_done" and sorted(done["not_found"]) == sorted(foreign), done
        assert {e["conv"] for e in po.events} == {mine}
        # live: members rename and post; the outsider's connection gets none of it
        pv = await Peer.connect(ws_url, cast.victim)
        r = await api.http.patch(f"/v1/conversations/{private}", headers=cast.owner.headers, json={"topic": "secret"})
        assert r.status_code == 200, r.text
        assert (await pv.send_msg(private, "members only"))["type"] == "ack"
        await pv.wait_for_seq(private, before[private]["last_seq"] + 2)
        marker = await api.send(cast.owner, mine, "marker")
        await po.wait_for_seq(mine, marker.json()["seq"])
        assert {e["conv"] for e in po.events} == {mine}
        for c, k in zip(foreign, ("private", "group", "dm"), strict=True):
            now = await snapshot(api, cast, k, c)
            grew = 2 if c == private else 0
            assert now["last_seq"] == before[c]["last_seq"] + grew and now["members"] == before[c]["members"]
        # the directory never lists a private channel
        r = await api.http.get("/v1/channels", headers=cast.outsider.headers, params={"q": before[private]["name"]})
        assert r.status_code == 200 and r.json()["channels"] == [], r.text
        # a client-supplied sender is ignored (REST and WS)
        r = await api.http.post(
            f"/v1/conversations/{mine}/messages",
            headers=cast.outsider.headers,
            json={"client_msg_id": "forged", "body": "x", "sender": cast.owner.id},
        )
        assert r.status_code == 201 and r.json()["sender"] == cast.outsider.id, r.text
        ack = await po.send_msg(mine, "y", "forged-ws", sender=cast.owner.id)
        evs = await api.all_events(cast.owner, mine)
        assert [e["sender"] for e in evs if e["seq"] == ack["seq"]] == [cast.outsider.id]
        for p in (po, pv):
            await p.close()
