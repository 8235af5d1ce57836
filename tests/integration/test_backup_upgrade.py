"""Backup/restore and upgrade of the messages store, through the real service
(docs/operations.md, "Backup and restore" and "Upgrades").

- A ``pg_dump`` of a populated messages database, restored into a fresh database that the
  service is then pointed at, gives back the same history, sequences and receipts, and the
  next message takes the next sequence number.
- A database populated at the oldest migration (0001) and upgraded to head by the service's
  own start-up migration keeps every conversation, member, event and receipt, and the
  service serves them.
"""

from __future__ import annotations

import asyncio
import glob
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from chat_common.db import _alembic_config, make_engine
from chat_devtools.cluster import Cluster
from chat_devtools.testing import Backend, ClusterFactory, PgTarget
from chat_messages.main import MIGRATIONS
from helpers.chat_client import Api, User
from sqlalchemy import text
from sqlalchemy.engine import Connection

VERSION_TABLE = "alembic_version_messages"


def _pg_tool(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        pytest.fail(f"{name} not found (the PostgreSQL client tools come with the server package)")
    return found[-1]


def _libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _snapshot(api: Api, user: User, convs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for conv in convs:
        receipts = await api.http.get(f"/v1/conversations/{conv}/receipts", headers=user.headers)
        assert receipts.status_code == 200, receipts.text
        out[conv] = {"events": await api.all_events(user, conv), "receipts": receipts.json()}
    listed = await api.http.get("/v1/conversations", headers=user.headers)
    assert listed.status_code == 200, listed.text
    out["list"] = sorted(listed.json()["conversations"], key=lambda c: c["id"])
    return out


def _point_messages_at(c: Cluster, url: str) -> None:
    """SIGKILL the messages service and start it again on another database."""
    for m in c.messages:
        m.kill()
        m.env["MESSAGES_DATABASE_URL"] = url
    for m in c.messages:
        m.start()


@pytest.mark.postgres
async def test_pg_dump_restored_into_a_fresh_database_gives_back_history_sequences_receipts(
    cluster: ClusterFactory, pg_server: PgTarget, tmp_path: Path
) -> None:
    backend = Backend("postgres", tmp_path, pg_server)
    c = cluster(backend=backend, fresh=True)
    async with Api(c.gateway_url) as api:
        alice, bob, carol = [await api.register_login(n) for n in ("alice", "bob", "carol")]
        group = (await api.create(alice, "group", [bob, carol], name="backup"))["id"]
        dm = (await api.create(alice, "dm", [bob]))["id"]
        for i in range(40):
            r = await api.send(alice if i % 2 else bob, group if i % 3 else dm, f"message {i} ünïcödé 🙂")
            assert r.status_code in (200, 201), r.text
        sent_by_alice = [
            e for e in await api.all_events(alice, group) if e["kind"] == "message" and e["sender"] == alice.id
        ]
        r = await api.http.patch(
            f"/v1/conversations/{group}/messages/{sent_by_alice[0]['seq']}",
            headers=alice.headers,
            json={"body": "edited"},
        )
        assert r.status_code == 200, r.text
        r = await api.http.delete(
            f"/v1/conversations/{group}/messages/{sent_by_alice[1]['seq']}", headers=alice.headers
        )
        assert r.status_code == 200, r.text
        for who, seq in ((bob, 10), (carol, 5)):
            r = await api.http.post(
                f"/v1/conversations/{group}/receipts",
                headers=who.headers,
                json={"delivered_seq": seq + 3, "read_seq": seq},
            )
            assert r.status_code == 204, r.text
        before = await _snapshot(api, alice, [group, dm])
        last_seq = before[group]["events"][-1]["seq"]

        # the backup: pg_dump of the live database (custom format), restored into a new one
        source = c.messages[0].env["MESSAGES_DATABASE_URL"]
        dump = tmp_path / "messages.dump"
        dump_cmd = [_pg_tool("pg_dump"), "-Fc", "-f", str(dump), _libpq(source)]
        await asyncio.to_thread(subprocess.run, dump_cmd, check=True, timeout=120)
        restored = pg_server.create_database(f"t_{uuid.uuid4().hex[:16]}_restored")
        restore_cmd = [_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "-d", _libpq(restored), str(dump)]
        await asyncio.to_thread(subprocess.run, restore_cmd, check=True, timeout=120)
        _point_messages_at(c, restored)

        after = await _snapshot(api, alice, [group, dm])
        assert after == before
        r = await api.send(carol, group, "after the restore")
        assert r.status_code in (200, 201), r.text
        assert r.json()["seq"] == last_seq + 1


async def test_upgrade_from_the_oldest_migration_keeps_everything(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(backend=backend, fresh=True)
    async with Api(c.gateway_url) as api:
        alice, bob = await api.register_login("alice"), await api.register_login("bob")

        # a messages database as the first release left it (migration 0001), populated
        old_url = backend.database_urls("old")["messages"]
        engine = make_engine(old_url)
        cfg = _alembic_config(MIGRATIONS, VERSION_TABLE)

        def to_0001(conn: Connection) -> None:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")

        ts = "2026-01-02T03:04:05.678Z"
        conv, dm = "c" + uuid.uuid4().hex[:20], "d" + uuid.uuid4().hex[:20]
        dm_key = ":".join(sorted([alice.id, bob.id]))
        bodies = {seq: f"old message {seq}" for seq in range(1, 31)}
        async with engine.begin() as conn:
            await conn.run_sync(to_0001)
            await conn.execute(
                text(
                    "INSERT INTO conversations (id, kind, name, private, created_by, created_at, last_seq, dm_key) "
                    "VALUES (:id, :kind, :name, :private, :by, :ts, :last, :dm_key)"
                ),
                [
                    {
                        "id": conv,
                        "kind": "group",
                        "name": "Old Friends",
                        "private": True,
                        "by": alice.id,
                        "ts": ts,
                        "last": 32,
                        "dm_key": None,
                    },
                    {
                        "id": dm,
                        "kind": "dm",
                        "name": None,
                        "private": True,
                        "by": alice.id,
                        "ts": ts,
                        "last": 1,
                        "dm_key": dm_key,
                    },
                ],
            )
            await conn.execute(
                text(
                    "INSERT INTO members (conv_id, user_id, role, joined_at, delivered_seq, read_seq) "
                    "VALUES (:c, :u, :r, :ts, :d, :rd)"
                ),
                [
                    {"c": conv, "u": alice.id, "r": "owner", "ts": ts, "d": 32, "rd": 32},
                    {"c": conv, "u": bob.id, "r": "member", "ts": ts, "d": 20, "rd": 12},
                    {"c": dm, "u": alice.id, "r": "member", "ts": ts, "d": 1, "rd": 1},
                    {"c": dm, "u": bob.id, "r": "member", "ts": ts, "d": 0, "rd": 0},
                ],
            )
            rows = [
                {
                    "c": conv,
                    "s": seq,
                    "k": "message",
                    "by": alice.id if seq % 2 else bob.id,
                    "body": body,
                    "cmid": f"m{seq}",
                    "target": None,
                    "deleted": seq == 7,
                }
                for seq, body in bodies.items()
            ]
            rows.append(
                {
                    "c": conv,
                    "s": 31,
                    "k": "edit",
                    "by": bob.id,
                    "body": "edited 2",
                    "cmid": None,
                    "target": 2,
                    "deleted": False,
                }
            )
            rows.append(
                {
                    "c": conv,
                    "s": 32,
                    "k": "delete",
                    "by": alice.id,
                    "body": None,
                    "cmid": None,
                    "target": 7,
                    "deleted": False,
                }
            )
            rows.append(
                {
                    "c": dm,
                    "s": 1,
                    "k": "message",
                    "by": alice.id,
                    "body": "hi",
                    "cmid": "dm1",
                    "target": None,
                    "deleted": False,
                }
            )
            for r in rows:  # the erased message keeps no text, as the service leaves it
                if r["deleted"]:
                    r["body"] = None
            await conn.execute(
                text(
                    "INSERT INTO events (conv_id, seq, kind, sender, ts, client_msg_id, body, attachments, reply_to, "
                    "target, user_id, role, deleted) "
                    "VALUES (:c, :s, :k, :by, :ts, :cmid, :body, NULL, NULL, :target, NULL, NULL, :deleted)"
                ),
                [{**r, "ts": ts} for r in rows],
            )
        await engine.dispose()

        # the service upgrades it at start-up and serves it
        _point_messages_at(c, old_url)
        events = await api.all_events(alice, conv)
        assert [(e["seq"], e["kind"], e["sender"]) for e in events] == [(r["s"], r["k"], r["by"]) for r in rows[:-1]]
        got = {e["seq"]: e.get("body") for e in events if e["kind"] == "message"}
        assert got == {seq: (None if seq == 7 else body) for seq, body in bodies.items()}
        assert events[6].get("deleted") is True
        assert (events[30]["target"], events[30]["body"]) == (2, "edited 2")
        assert events[31]["target"] == 7
        r = await api.http.get(f"/v1/conversations/{conv}/receipts", headers=bob.headers)
        assert r.status_code == 200, r.text
        assert sorted((x["user_id"], x["delivered_seq"], x["read_seq"]) for x in r.json()["receipts"]) == sorted(
            [(alice.id, 32, 32), (bob.id, 20, 12)]
        )
        listed = {
            x["id"]: x for x in (await api.http.get("/v1/conversations", headers=bob.headers)).json()["conversations"]
        }
        assert listed[conv]["name"] == "Old Friends"
        assert dm in listed
        assert [e["body"] for e in await api.all_events(bob, dm)] == ["hi"]
        # the same dm is found again, not created twice; the log continues where it was
        assert (await api.create(bob, "dm", [alice]))["id"] == dm
        r = await api.send(bob, conv, "new after the upgrade")
        assert r.status_code in (200, 201), r.text
        assert r.json()["seq"] == 33
        r = await api.send(alice, conv, "m3", client_msg_id="m3")  # an old send key is still known
        assert r.status_code in (200, 201), r.text
        assert r.json()["seq"] == 3

    engine = make_engine(old_url)
    async with engine.connect() as conn:
        query = text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 (a constant)
        head = (await conn.execute(query)).scalar_one()
    await engine.dispose()
    assert head == sorted(p.stem.split("_")[0] for p in (Path(MIGRATIONS) / "versions").glob("0*.py"))[-1]
