"""The Python client SDK (libs/client, ``chat_sdk``) and its CLI against real processes.

Each test runs a cluster (NATS, auth, messages, gateways) and drives it only through the
SDK (or the ``chat`` console script), the way an app would:

- ``send()`` returns the seq and the event arrives exactly once;
- two clients on two gateways exchange messages, both see gap-free ordered logs;
- the gateway a client is connected to is SIGKILLed (failover to the other URL, or the same
  gateway restarted on its port) while it sends: every ``send()`` returns, nothing is
  delivered twice, the app sees exactly the log's seq sequence;
- an app resuming from saved positions gets a truncated ``sync`` completed over REST;
- a gateway that goes silent (SIGSTOP) is detected by missed heartbeats and replaced;
- short-lived access tokens are refreshed and re-authenticated in place (no 4003), and a
  refused refresh (after logout elsewhere, or a 4001 close of a deactivated user) ends the
  session with ``Unauthorized``;
- the CLI end to end (login --register, create, send, history, tail --count, convs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_devtools.testing import ClusterFactory
from chat_sdk import ChatClient, ClientOptions, Event, SendResult, Unauthorized

PASSWORD = "correct horse battery"
FAST = ClientOptions(backoff_base_s=0.1, backoff_cap_s=1.0, gap_hold_s=0.3, connect_timeout_s=5.0)


# -- helpers ------------------------------------------------------------------------------
class Collector:
    """Reads ``client.events()`` in a task; log events per conversation, in arrival order."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.events: dict[str, list[Event]] = defaultdict(list)
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for item in self.client.events():
                if isinstance(item, Event):
                    self.events[item.conv].append(item)
                    self._changed.set()
        except Exception as exc:
            self.error = exc
            self._changed.set()

    def seqs(self, conv: str) -> list[int]:
        return [e.seq for e in self.events[conv]]

    async def wait_seq(self, conv: str, seq: int, timeout: float = 20.0) -> list[Event]:
        async def reached() -> None:
            while not (self.events[conv] and self.events[conv][-1].seq >= seq):
                if self.error is not None:
                    raise AssertionError(f"events() failed: {self.error!r}")
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            raise AssertionError(f"seq {seq} not delivered in {timeout}s; got {self.seqs(conv)[-5:]}") from None
        return self.events[conv]


async def new_user(urls: list[str], prefix: str = "sdk") -> str:
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    await ChatClient.register(urls, name, PASSWORD)
    return name


@contextlib.asynccontextmanager
async def connected(urls: list[str], name: str, **kw: Any) -> AsyncIterator[tuple[ChatClient, Collector]]:
    client = await ChatClient.connect(urls, username=name, password=PASSWORD, options=kw.pop("options", FAST), **kw)
    col = Collector(client)
    try:
        yield client, col
    finally:
        await client.close()
        await asyncio.wait_for(col.task, 5)


async def whole_log(client: ChatClient, conv: str) -> list[Event]:
    out: list[Event] = []
    after = 0
    while True:
        page = await client.history(conv, after=after, limit=200)
        out.extend(page.events)
        if not page.has_more or not page.events:
            return out
        after = page.events[-1].seq


def shape(evs: list[Event]) -> list[tuple[int, str, str | None, str | None]]:
    return [(e.seq, e.kind, e.client_msg_id, e.body) for e in evs]


def assert_matches_log(got: list[Event], log: list[Event], first: int = 1) -> None:
    """``got`` is exactly the log from seq ``first`` on: in order, gap-free, no repeats."""
    seqs = [e.seq for e in got]
    assert len(seqs) == len(set(seqs)), f"delivered twice: {sorted(s for s in seqs if seqs.count(s) > 1)}"
    assert seqs == list(range(first, log[-1].seq + 1)), f"not gap-free/ordered: {seqs}"
    assert shape(got) == shape([e for e in log if e.seq >= first])


# -- basics ---------------------------------------------------------------------------------
async def test_send_returns_seq_and_the_event_arrives_once(cluster: ClusterFactory) -> None:
    c = cluster(gateways=1)
    name = await new_user(c.gateway_urls)
    async with connected(c.gateway_urls, name) as (client, col):
        conv = await client.create_conversation("channel", name=f"c{uuid.uuid4().hex[:8]}")
        results = [await client.send(conv.id, f"hello {i}") for i in range(3)]
        assert [r.seq for r in results] == [2, 3, 4]  # seq 1: the creator's member_joined
        same = await client.send(conv.id, "replayed", client_msg_id=results[0].client_msg_id)
        assert same.seq == results[0].seq  # idempotent: the first seq, nothing new
        await col.wait_seq(conv.id, 4)
        await asyncio.sleep(0.5)  # anything repeated would have arrived by now
        log = await whole_log(client, conv.id)
        assert_matches_log(col.events[conv.id], log)
        assert [e.body for e in col.events[conv.id][1:]] == ["hello 0", "hello 1", "hello 2"]
        assert col.events[conv.id][0].kind == "member_joined" and client.stats["duplicates"] == 0


async def test_two_clients_on_two_gateways_exchange_in_order(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2)
    a_url, b_url = c.gateway_urls
    a_name, b_name = await new_user([a_url]), await new_user([b_url])
    async with connected([a_url], a_name) as (a, a_col), connected([b_url], b_name) as (b, b_col):
        assert a.gateway_url == a_url and b.gateway_url == b_url
        assert b.user_id is not None
        conv = await a.create_conversation("group", members=[b.user_id])
        n = 25

        async def talk(client: ChatClient, who: str) -> list[SendResult]:
            return [await client.send(conv.id, f"{who} {i}") for i in range(n)]

        ra, rb = await asyncio.gather(talk(a, "a"), talk(b, "b"))
        assert [r.seq for r in ra] == sorted(r.seq for r in ra)
        last = max(r.seq for r in ra + rb)
        await a_col.wait_seq(conv.id, last)
        await b_col.wait_seq(conv.id, last)
        log = await whole_log(a, conv.id)
        assert log[-1].seq == last == 2 + 2 * n
        assert_matches_log(a_col.events[conv.id], log)
        # b follows from its own member_joined (seq 2: the creator's is 1)
        assert_matches_log(b_col.events[conv.id], log, first=2)
        bodies = [e.body for e in b_col.events[conv.id] if e.kind == "message"]
        assert [x for x in bodies if x and x.startswith("a")] == [f"a {i}" for i in range(n)]


async def test_resume_from_saved_positions_pages_a_truncated_sync(cluster: ClusterFactory) -> None:
    """An app reconnects with the positions it saved; ``sync`` replays only 2 events per
    conversation here, so the rest comes over REST while a peer keeps posting live."""
    c = cluster(gateways=1, env={"GATEWAY_SYNC_MAX_EVENTS": "2"})
    urls = c.gateway_urls
    name, peer_name = await new_user(urls), await new_user(urls)
    async with connected(urls, peer_name) as (peer, _):
        conv = await peer.create_conversation("channel", name=f"r{uuid.uuid4().hex[:8]}")
        async with connected(urls, name) as (first, col):
            await first.join(conv.id)
            for i in range(5):
                await first.send(conv.id, f"early {i}")
            await col.wait_seq(conv.id, 7)
            saved = first.positions
        assert saved[conv.id] == 7
        for i in range(12):  # missed while away
            await peer.send(conv.id, f"missed {i}")

        async def chatter() -> None:
            for i in range(20):
                await peer.send(conv.id, f"live {i}")

        talking = asyncio.create_task(chatter())
        async with connected(urls, name, positions={conv.id: 3}) as (again, col2):
            await talking
            log = await whole_log(again, conv.id)
            await col2.wait_seq(conv.id, log[-1].seq)
            await asyncio.sleep(0.3)
            assert_matches_log(col2.events[conv.id], log, first=4)
            assert again.stats["catch_ups"] >= 1, again.stats


# -- faults ---------------------------------------------------------------------------------
@pytest.mark.fault
@pytest.mark.parametrize("mode", ["failover", "restart"])
async def test_gateway_sigkill_while_sending(cluster: ClusterFactory, mode: str) -> None:
    """SIGKILL the client's gateway mid-burst. ``failover``: the client knows both gateway
    URLs; ``restart``: it knows one, which comes back on the same port. A peer keeps posting
    to the same channel meanwhile (from the other gateway, when there is one), so events are
    published while the client reconnects and its new connection receives live events ahead
    of its position before the ``sync`` replay. ``sync`` replays at most 2 events per
    conversation here, so the client must page the rest over REST (``truncated``) while
    live events above the replayed range are already arriving."""
    c = cluster(gateways=2 if mode == "failover" else 1, env={"GATEWAY_SYNC_MAX_EVENTS": "2"})
    urls = c.gateway_urls
    name, peer_name = await new_user(urls), await new_user(urls)
    n, peer_n, workers, kill_after = 60, 30, 4, 15
    async with connected(urls, name) as (client, col), connected(urls[::-1], peer_name) as (peer, _):
        assert client.gateway_url == urls[0] and peer.gateway_url == urls[-1]
        conv = await client.create_conversation("channel", name=f"k{uuid.uuid4().hex[:8]}")
        await peer.join(conv.id)
        results: list[SendResult] = []
        acked = asyncio.Event()

        async def worker(w: int) -> None:
            for i in range(w, n, workers):
                results.append(await client.send(conv.id, f"m{i}", deadline_s=45))
                if len(results) >= kill_after:
                    acked.set()

        async def chatter() -> list[SendResult]:
            out = []
            for i in range(peer_n):
                out.append(await peer.send(conv.id, f"p{i}", deadline_s=45))
                await asyncio.sleep(0.02)
            return out

        async def fault() -> None:
            await acked.wait()
            gw = c.gateways[0]
            await asyncio.to_thread(gw.kill)
            if mode == "restart":
                await asyncio.sleep(0.5)
                await asyncio.to_thread(gw.start)

        peer_results, *_ = await asyncio.wait_for(
            asyncio.gather(chatter(), fault(), *(worker(w) for w in range(workers))), 60
        )
        seqs = sorted(r.seq for r in results + peer_results)
        assert len(results) == n and len(set(seqs)) == n + peer_n, "every send returned its own seq"
        await col.wait_seq(conv.id, seqs[-1])
        await asyncio.sleep(0.5)
        log = await whole_log(client, conv.id)
        assert log[-1].seq == n + peer_n + 2, "each message stored once (+ two member_joined)"
        assert_matches_log(col.events[conv.id], log)
        by_id = {e.client_msg_id: e.seq for e in log if e.kind == "message"}
        assert {r.client_msg_id: r.seq for r in results + peer_results} == by_id
        assert client.disconnects, "the kill was noticed"
        assert client.stats["connects"] >= 2
        if mode == "failover":
            assert client.gateway_url == urls[1]


@pytest.mark.fault
async def test_silent_gateway_is_detected_by_missed_heartbeats(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2, env={"GATEWAY_HEARTBEAT_S": "1"})
    urls = c.gateway_urls
    name = await new_user(urls)
    frozen = c.gateways[0]
    assert frozen.pid is not None
    async with connected(urls, name) as (client, col):
        conv = await client.create_conversation("channel", name=f"h{uuid.uuid4().hex[:8]}")
        await client.send(conv.id, "before")
        os.kill(frozen.pid, signal.SIGSTOP)  # the TCP connection stays up, nothing arrives
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            res = await client.send(conv.id, "after", deadline_s=20)
            took = loop.time() - t0
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        dead = [d for d in client.disconnects if "no data or ping" in d.reason]
        assert dead and dead[0].url == urls[0], client.disconnects
        assert 2.0 <= took < 10, f"3 x heartbeat_s (1 s) of silence, then reconnect; took {took:.1f}s"
        assert client.gateway_url == urls[1]
        await col.wait_seq(conv.id, res.seq)
        assert_matches_log(col.events[conv.id], await whole_log(client, conv.id))


# -- tokens ---------------------------------------------------------------------------------
async def test_short_lived_tokens_are_refreshed_in_place(cluster: ClusterFactory) -> None:
    c = cluster(gateways=1, env={"AUTH_ACCESS_TTL_S": "4"})
    urls = c.gateway_urls
    name = await new_user(urls)
    stored: list[str] = []
    async with connected(urls, name, on_tokens=lambda t: stored.append(t.refresh_token)) as (client, col):
        first_access = client.tokens.access_token
        conv = await client.create_conversation("channel", name=f"t{uuid.uuid4().hex[:8]}")
        seqs = []
        for i in range(6):  # 6 s: 1.5 lifetimes of the first token
            seqs.append((await client.send(conv.id, f"tick {i}")).seq)
            await asyncio.sleep(1)
        await col.wait_seq(conv.id, seqs[-1])
        assert client.disconnects == [], f"no close (4003 or other): {client.disconnects}"
        assert client.stats["connects"] == 1
        assert client.stats["refreshes"] >= 2 and client.stats["reauths"] >= 2, client.stats
        assert client.tokens.access_token != first_access
        assert stored[-1] == client.tokens.refresh_token, "the newest refresh token is kept and handed out"
        assert len(set(stored)) == len(stored) == client.stats["refreshes"] + 1  # + the login
        assert_matches_log(col.events[conv.id], await whole_log(client, conv.id))

        # The family is revoked elsewhere (logout): the next refresh is refused → session over.
        async with httpx.AsyncClient(base_url=urls[0]) as http:
            r = await http.post("/v1/auth/logout", json={"refresh_token": client.tokens.refresh_token})
            assert r.status_code == 204, r.text
        await asyncio.wait_for(col.task, 10)
        assert isinstance(col.error, Unauthorized), col.error
        with pytest.raises(Unauthorized):
            await client.send(conv.id, "too late")


async def test_close_4001_with_a_refused_refresh_ends_the_session(cluster: ClusterFactory) -> None:
    """An operator deactivates the user: the gateway closes with 4001 and the refresh token
    family is revoked, so the client's refresh is refused → it stops with Unauthorized
    instead of reconnecting forever."""
    c = cluster(gateways=1, fresh=True)  # the first user is the admin
    urls = c.gateway_urls
    await new_user(urls, "admin")  # the first account is the admin, which cannot be deactivated
    name = await new_user(urls)
    async with connected(urls, name) as (client, col):
        conv = await client.create_conversation("channel", name=f"d{uuid.uuid4().hex[:8]}")
        await client.send(conv.id, "still active")
        assert c.account is not None  # chat-admin runs with auth's settings, NATS user included
        env = {
            **os.environ,
            "AUTH_DATABASE_URL": c.database_urls["auth"],
            "AUTH_NATS_URL": c.nats_url,
            "AUTH_ENVIRONMENT": "test",
            **c.account.service_env("auth", "AUTH_"),
        }
        admin = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "chat_auth.admin", "deactivate", name],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert admin.returncode == 0, admin.stderr
        await asyncio.wait_for(col.task, 10)
        assert isinstance(col.error, Unauthorized), col.error
        assert [d.code for d in client.disconnects] == [4001], client.disconnects
        with pytest.raises(Unauthorized):
            await client.send(conv.id, "refused")


# -- CLI ------------------------------------------------------------------------------------
def _chat(args: list[str], env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("chat"))
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _ok(p: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert p.returncode == 0, f"{p.args}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def test_cli_end_to_end(cluster: ClusterFactory, tmp_path: Path) -> None:
    c = cluster(gateways=1)
    url = c.gateway_url
    env = {**os.environ, "CHAT_CONFIG_DIR": str(tmp_path / "cfg"), "CHAT_PASSWORD": PASSWORD}
    user = f"cli{uuid.uuid4().hex[:8]}"

    assert _chat(["convs"], env).returncode == 3  # not logged in yet
    (login,) = _ok(_chat(["login", url, user, "--register", "--json"], env))
    creds = Path(login["credentials"])
    assert creds.parent == tmp_path / "cfg" and stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert json.loads(creds.read_text())["tokens"]["refresh_token"]

    (conv,) = _ok(_chat(["create", "channel", "--name", f"cli{uuid.uuid4().hex[:6]}", "--json"], env))
    tail = subprocess.Popen(
        [str(Path(sys.executable).with_name("chat")), "tail", conv["id"], "--count", "2", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stderr is not None
        ready = tail.stderr.readline()
        assert "tailing" in ready, ready + tail.stderr.read()
        plain = _chat(["send", conv["id"], "hello 0"], env)
        assert plain.returncode == 0 and plain.stdout.startswith(f"sent #2 to {conv['id']}"), plain.stdout
        (sent,) = _ok(_chat(["send", conv["id"], "hello 1", "--json"], env))
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, err
    tailed = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in tailed] == [2, sent["seq"]] == [2, 3]
    assert [e["body"] for e in tailed] == ["hello 0", "hello 1"]

    hist = _ok(_chat(["history", conv["id"], "--limit", "10", "--json"], env))
    assert [(e["seq"], e["kind"]) for e in hist] == [(1, "member_joined"), (2, "message"), (3, "message")]
    listed = _ok(_chat(["convs", "--json"], env))
    assert conv["id"] in [x["id"] for x in listed]
    bad = _chat(["send", "nosuchconv", "x"], env)
    assert bad.returncode == 1 and "not_found" in bad.stderr
