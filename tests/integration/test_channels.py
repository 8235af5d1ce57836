"""Channels through real processes: unique names (also under a race), rename/topic/description
as ``conversation_updated`` events (live and in history), archive (read-only on WS and REST,
unarchive restores), and the public channel directory (search, pagination, private excluded).
One cluster per backend for the module."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from chat_devtools.cluster import Cluster
from helpers.chat_client import Api, User
from helpers.peer import Peer, users


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


async def create_channel(api: Api, user: User, name: str, **kw: Any) -> httpx.Response:
    return await api.http.post("/v1/conversations", headers=user.headers, json={"kind": "channel", "name": name, **kw})


async def test_names_unique_case_insensitively_also_under_a_race(module_cluster: Cluster) -> None:
    async with Api(module_cluster.gateway_url) as api:
        alice, bob = await users(api, "alice", "bob")
        tag = uuid.uuid4().hex[:8]
        r = await create_channel(api, alice, f"Team {tag}")
        assert r.status_code == 201, r.text
        first = r.json()
        assert (first["topic"], first["description"], first["archived"]) == ("", "", False)
        for dup in (f"team {tag}", f"  TEAM\t{tag} ", f"Team\u00a0{tag}"):
            problem(await create_channel(api, bob, dup), 409, "conflict")
        problem(await create_channel(api, bob, f"TEAM {tag}", private=True), 409, "conflict")
        race = await asyncio.gather(*(create_channel(api, u, f"race {tag}") for u in (alice, bob) * 4))
        assert sorted(r.status_code for r in race) == [201] + [409] * 7, [r.text for r in race]
        # renames: a collision is 409 and changes nothing; racing renames to one name: one wins
        other = (await create_channel(api, alice, f"other {tag}")).json()["id"]
        problem(
            await api.http.patch(f"/v1/conversations/{other}", headers=alice.headers, json={"name": f"RACE {tag}"}),
            409,
            "conflict",
        )
        ids = [(await create_channel(api, alice, f"r{i} {tag}")).json()["id"] for i in range(4)]
        renames = await asyncio.gather(
            *(
                api.http.patch(f"/v1/conversations/{c}", headers=alice.headers, json={"name": f"winner {tag}"})
                for c in ids
            )
        )
        assert sorted(r.status_code for r in renames) == [200, 409, 409, 409], [r.text for r in renames]
        names = [(await api.http.get(f"/v1/conversations/{c}", headers=alice.headers)).json()["name"] for c in ids]
        assert sorted(names).count(f"winner {tag}") == 1


async def test_rename_topic_description_events_live_and_in_history(module_cluster: Cluster) -> None:
    async with Api(module_cluster.gateway_url) as api:
        alice, bob = await users(api, "alice", "bob")
        tag = uuid.uuid4().hex[:8]
        chan = (await api.create(alice, "channel", [bob], name=f"news {tag}"))["id"]  # seqs 1, 2
        pb = await Peer.connect(module_cluster.ws_urls[0], bob)
        url = f"/v1/conversations/{chan}"
        r = await api.http.patch(
            url,
            headers=alice.headers,
            json={"name": f" Headlines\n{tag} ", "topic": "daily\x00 news", "description": "d"},
        )
        assert r.status_code == 200, r.text
        obj = r.json()
        assert (obj["name"], obj["topic"], obj["description"], obj["last_seq"]) == (
            f"Headlines {tag}",
            "daily news",
            "d",
            3,
        )
        await pb.wait_for_seq(chan, 3)
        live = pb.events[-1]
        assert (live["kind"], live["sender"], live["changes"]) == (
            "conversation_updated",
            alice.id,
            {"name": f"Headlines {tag}", "topic": "daily news", "description": "d"},
        )
        # null clears the topic; unchanged values make no event
        r = await api.http.patch(url, headers=alice.headers, json={"topic": None, "description": "d"})
        assert r.status_code == 200 and r.json()["topic"] == "" and r.json()["last_seq"] == 4, r.text
        r = await api.http.patch(url, headers=alice.headers, json={"description": "d"})
        assert r.status_code == 200 and r.json()["last_seq"] == 4, r.text
        hist = await api.all_events(bob, chan)
        assert [(e["seq"], e["kind"], e.get("changes")) for e in hist[2:]] == [
            (3, "conversation_updated", live["changes"]),
            (4, "conversation_updated", {"topic": ""}),
        ]
        for body in (
            {"topic": "x" * 251},
            {"description": "x" * 1001},
            {"name": None},
            {"name": " \x00 "},
            {"name": "x" * 81},
            {},
            {"topic": 5},
        ):
            problem(await api.http.patch(url, headers=alice.headers, json=body), 422, "invalid")
        problem(await api.http.patch(url, headers=bob.headers, json={"topic": "mine"}), 403, "forbidden")
        assert (await api.http.get(url, headers=bob.headers)).json()["last_seq"] == 4
        await pb.close()


async def test_archive_is_read_only_on_ws_and_rest_until_unarchived(module_cluster: Cluster) -> None:
    async with Api(module_cluster.gateway_url) as api:
        alice, bob, carol = await users(api, "alice", "bob", "carol")
        chan = (await api.create(alice, "channel", [bob], name=f"attic {uuid.uuid4().hex[:8]}"))["id"]
        assert (await api.send(bob, chan, "before")).status_code == 201  # seq 3
        pb = await Peer.connect(module_cluster.ws_urls[0], bob)
        r = await api.http.post(f"/v1/conversations/{chan}/archive", headers=alice.headers)
        assert r.status_code == 200 and r.json()["archived"] is True and r.json()["last_seq"] == 4, r.text
        await pb.wait_for_seq(chan, 4)
        assert (pb.events[-1]["kind"], pb.events[-1]["changes"]) == ("conversation_updated", {"archived": True})
        body = problem(await api.send(alice, chan, "anyone?"), 403, "forbidden")
        assert "archived" in body["detail"]
        f = await pb.send_msg(chan, "anyone?", "arch-1")
        assert (f["type"], f["code"], f["conv"], f["client_msg_id"]) == ("error", "forbidden", chan, "arch-1"), f
        assert "archived" in f["message"]
        problem(await api.http.post(f"/v1/conversations/{chan}/join", headers=carol.headers), 403, "forbidden")
        # reading, sync and the directory still work
        assert [e["seq"] for e in await api.all_events(carol, chan)] == [1, 2, 3, 4]
        done = await pb.call({"type": "sync", "ref": "s", "positions": {chan: 2}})
        assert done["type"] == "sync_done" and done["not_found"] == [], done
        r = await api.http.get("/v1/channels", headers=carol.headers, params={"q": r.json()["name"]})
        assert [(c["id"], c["archived"]) for c in r.json()["channels"]] == [(chan, True)], r.text
        # unarchive restores posting
        r = await api.http.post(f"/v1/conversations/{chan}/unarchive", headers=alice.headers)
        assert r.status_code == 200 and r.json()["archived"] is False and r.json()["last_seq"] == 5, r.text
        ack = await pb.send_msg(chan, "back again", "arch-2")
        assert ack["type"] == "ack" and ack["seq"] == 6, ack
        kinds = [(e["seq"], e["kind"]) for e in await api.all_events(alice, chan)]
        assert kinds[3:] == [(4, "conversation_updated"), (5, "conversation_updated"), (6, "message")]
        await pb.close()


async def test_directory_search_pagination_private_excluded(module_cluster: Cluster) -> None:
    async with Api(module_cluster.gateway_url) as api:
        alice, bob = await users(api, "alice", "bob")
        tag = uuid.uuid4().hex[:8]
        public = {f"{tag}x{i:02d}": "" for i in range(7)}
        for name in public:
            r = await create_channel(api, alice, name.upper() if name.endswith("3") else name)
            assert r.status_code == 201, r.text
            public[name] = r.json()["id"]
        await create_channel(api, alice, f"{tag}x99 hidden", private=True)
        await api.create(alice, "group", [bob], name=f"{tag}x98")
        joined = public[f"{tag}x01"]
        assert (await api.http.post(f"/v1/conversations/{joined}/join", headers=bob.headers)).status_code == 200
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(5):
            params: dict[str, Any] = {"q": tag.upper(), "limit": 3, **({"cursor": cursor} if cursor else {})}
            r = await api.http.get("/v1/channels", headers=bob.headers, params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["channels"]) <= 3
            seen += page["channels"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [c["id"] for c in seen] == list(public.values())  # by name, case-insensitively
        by_id = {c["id"]: c for c in seen}
        assert by_id[joined]["role"] == "member" and by_id[joined]["member_count"] == 2
        other = by_id[public[f"{tag}x02"]]
        assert (other["role"], other["member_count"], other["read_seq"], other["private"]) == (None, 1, 0, False)
        # the whole directory (no q), paged to the end: ours in order, never the private one
        all_ids: list[str] = []
        cursor = None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = (await api.http.get("/v1/channels", headers=bob.headers, params=params)).json()
            all_ids += [c["id"] for c in page["channels"]]
            assert all(c["kind"] == "channel" and not c["private"] for c in page["channels"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [i for i in all_ids if i in public.values()] == list(public.values())
        # LIKE wildcards are literal; a bad cursor is 422; limit is clamped
        r = await api.http.get("/v1/channels", headers=bob.headers, params={"q": f"{tag}%"})
        assert r.status_code == 200 and r.json()["channels"] == [], r.text
        r = await api.http.get("/v1/channels", headers=bob.headers, params={"q": f"{tag}_"})
        assert r.status_code == 200 and r.json()["channels"] == [], r.text
        problem(await api.http.get("/v1/channels", headers=bob.headers, params={"cursor": "%%"}), 422, "invalid")
        r = await api.http.get("/v1/channels", headers=bob.headers, params={"q": tag, "limit": 0})
        assert r.status_code == 200 and len(r.json()["channels"]) == 1, r.text
        problem(await api.http.get("/v1/channels"), 401, "unauthorized")
