"""Bad and edge-case WebSocket frames against a real gateway (PROTOCOL §4).

One cluster (one gateway, SQLite) serves the whole module; every test uses its own users
and connections. The auth timeout is lowered to AUTH_TIMEOUT_S to keep that test short.
The last test replays every bad frame while two other clients are connected and checks
that they, and the gateway, are unaffected.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_devtools.cluster import Cluster
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from helpers.chat_client import Api, User, Ws
from helpers.peer import Peer

Frame = dict[str, Any]
AUTH_TIMEOUT_S = 1.5


@pytest.fixture(scope="module")
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # SERVICE_TEST_ENV of this directory's conftest (registered under its path; importing
    # "conftest" by name could find another directory's conftest in a full run)
    conftest = request.config.pluginmanager.get_plugin(str(Path(__file__).with_name("conftest.py")))
    service_env: dict[str, str] = dict(conftest.SERVICE_TEST_ENV)
    base: Path = tmp_path_factory.mktemp("frames")
    nats = NatsServer(store_dir=base / "nats", accounts=[ChatAccount.generate()]).start()
    c = Cluster(
        nats.url,
        nats=nats,
        data_dir=base,
        log_dir=base / "logs",
        gateways=1,
        environment="test",
        env={**service_env, "GATEWAY_AUTH_TIMEOUT_S": str(AUTH_TIMEOUT_S)},
        media=False,
        search=False,
    )
    try:
        c.start()
        yield c
    finally:
        c.stop()
        nats.stop()


class Setup:
    def __init__(self, c: Cluster, api: Api, user: User, conv: str) -> None:
        self.c, self.api, self.user, self.conv = c, api, user, conv
        self.ws_url = c.ws_urls[0]

    async def ws(self) -> Ws:
        return await Ws.connect(self.ws_url, self.user.access_token)


async def setup(c: Cluster, api: Api) -> Setup:
    user = await api.register_login("frames")
    other = await api.register_login("peer")
    conv = (await api.create(user, "dm", [other]))["id"]
    return Setup(c, api, user, conv)


async def closed_with(ws: Ws, code: int, error_code: str, within: float = 10) -> None:
    """The server closes with ``code``, optionally after one ``error`` ``error_code``."""
    got = await ws.wait_closed(within)
    frames = ws.drain()
    assert got == code, (got, frames)
    assert frames == [] or (len(frames) == 1 and frames[0]["type"] == "error" and frames[0]["code"] == error_code), (
        frames
    )


async def still_open(ws: Ws) -> None:
    ref = uuid.uuid4().hex
    await ws.send({"type": "ping", "ref": ref})
    assert await ws.next() == {"type": "pong", "ref": ref}
    assert not ws.closed.is_set()


# --- scenarios (each asserts its outcome; the last test runs them all again) ---------------
async def malformed_json(s: Setup) -> None:
    for text in ('{"type": "ping"', "not json at all", '{"type": "ping", "ref": "x"}}'):
        ws = await s.ws()
        await ws.send(text)
        await closed_with(ws, 4008, "invalid")


async def binary_frame(s: Setup) -> None:
    ws = await s.ws()
    await ws.conn.send(b'{"type": "ping", "ref": "b"}')
    await closed_with(ws, 4008, "invalid")


async def not_an_object_with_string_type(s: Setup) -> None:
    for text in (
        '[{"type": "ping"}]',
        '{"ref": "x"}',
        '{"type": 5, "ref": "x"}',
        '"ping"',
        "null",
        "42",
    ):
        ws = await s.ws()
        await ws.send(text)
        await closed_with(ws, 4008, "invalid")


async def unknown_type(s: Setup) -> None:
    ws = await s.ws()
    await ws.send({"type": "bogus", "ref": "u1", "conv": s.conv})
    f = await ws.next()
    assert (f["type"], f["code"], f["ref"]) == ("error", "invalid", "u1"), f
    await still_open(ws)
    await ws.close()


async def send_with_bad_fields(s: Setup) -> None:
    ws = await s.ws()
    good = {"type": "send", "conv": s.conv, "client_msg_id": "c-1", "body": "hello"}
    bad = [
        {k: v for k, v in good.items() if k != "body"},
        {k: v for k, v in good.items() if k != "conv"},
        {k: v for k, v in good.items() if k != "client_msg_id"},
        {**good, "body": 5},
        {**good, "client_msg_id": ""},
        {**good, "client_msg_id": "x" * 65},
        {**good, "conv": ["not", "a", "string"]},
    ]
    for i, frame in enumerate(bad):
        ref = f"bad-{i}"
        await ws.send({**frame, "ref": ref})
        f = await ws.next()
        assert (f["type"], f["code"], f["ref"]) == ("error", "invalid", ref), (frame, f)
    await still_open(ws)
    r = await s.api.history(s.user, s.conv)
    assert [e["kind"] for e in r.json()["events"]] == ["member_joined", "member_joined"]
    await ws.close()


async def oversized_frame(s: Setup) -> None:
    ws = await s.ws()
    # just under 64 KiB (unknown members are ignored): answered
    await ws.send({"type": "ping", "ref": "big-ok", "pad": "x" * (60 * 1024)})
    assert await ws.next() == {"type": "pong", "ref": "big-ok"}
    await ws.send({"type": "ping", "ref": "too-big", "pad": "x" * (70 * 1024)})
    await closed_with(ws, 4008, "invalid")


async def first_frame_not_auth(s: Setup) -> None:
    firsts: list[Frame] = [
        {"type": "ping", "ref": "p"},
        {"type": "send", "conv": s.conv, "client_msg_id": "x", "body": "hi"},
        {"type": "auth"},
        {"type": "auth", "token": "forged.token.value"},
        {"type": "auth", "token": s.user.refresh_token},
    ]
    for first in firsts:
        ws = await Ws.connect(s.ws_url)
        await ws.send(first)
        await closed_with(ws, 4001, "unauthorized")


async def no_auth_in_time(s: Setup) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    ws = await Ws.connect(s.ws_url)
    await closed_with(ws, 4001, "unauthorized", within=AUTH_TIMEOUT_S + 5)
    elapsed = loop.time() - started
    assert AUTH_TIMEOUT_S - 0.3 <= elapsed <= AUTH_TIMEOUT_S + 3, elapsed


async def ping_pong(s: Setup) -> None:
    ws = await s.ws()
    await ws.send({"type": "ping", "ref": "r-42"})
    assert await ws.next() == {"type": "pong", "ref": "r-42"}
    await ws.send({"type": "ping"})
    pong = await ws.next()
    assert pong["type"] == "pong" and "ref" not in pong, pong
    await ws.close()


async def body_limits(s: Setup) -> None:
    ws = await s.ws()
    for ref, body, code in (
        ("e", "", "invalid"),
        ("w", " \n\t ", "invalid"),
        ("l", "😀" * 4001, "too_large"),
    ):
        await ws.send(
            {
                "type": "send",
                "ref": ref,
                "conv": s.conv,
                "client_msg_id": f"lim-{ref}",
                "body": body,
            }
        )
        f = await ws.next()
        assert f["type"] == "error", f
        assert (f.get("ref"), f.get("code"), f.get("conv"), f.get("client_msg_id")) == (
            ref,
            code,
            s.conv,
            f"lim-{ref}",
        ), f
    # 4000 code points after trimming is accepted (16,000 UTF-8 bytes)
    await ws.send(
        {
            "type": "send",
            "ref": "ok",
            "conv": s.conv,
            "client_msg_id": "lim-ok",
            "body": "  " + "😀" * 4000 + " \n",
        }
    )
    frames = [await ws.next(), await ws.next()]  # ack and own event, in either order
    ack = next(f for f in frames if f["type"] == "ack")
    ev = next(f for f in frames if f["type"] == "event")["event"]
    assert ack["ref"] == "ok" and ack["seq"] == ev["seq"] == 3, frames
    assert ev["body"] == "😀" * 4000
    # REST: the same limits
    assert (await s.api.send(s.user, s.conv, "", "lim-r1")).json()["code"] == "invalid"
    r = await s.api.send(s.user, s.conv, "😀" * 4001, "lim-r2")
    assert (r.status_code, r.json()["code"]) == (413, "too_large"), r.text
    r = await s.api.send(s.user, s.conv, "   ", "lim-r3")
    assert (r.status_code, r.json()["code"]) == (422, "invalid"), r.text
    hist = await s.api.all_events(s.user, s.conv)
    assert [e["seq"] for e in hist] == [1, 2, 3]
    await ws.close()


async def answers_in_order(s: Setup) -> None:
    ws = await s.ws()
    frames: list[Frame | str] = [
        {
            "type": "send",
            "ref": "a1",
            "conv": s.conv,
            "client_msg_id": f"ord-{uuid.uuid4().hex}",
            "body": "x",
        },
        {"type": "ping", "ref": "a2"},
        {"type": "bogus", "ref": "a3"},
        {"type": "send", "ref": "a4", "conv": s.conv},
        {"type": "sync", "ref": "a5", "positions": {}},
        {"type": "ping", "ref": "a6"},
    ]
    for f in frames:
        await ws.send(f)
    answers = []
    while len(answers) < len(frames):
        f = await ws.next()
        if f["type"] != "event":
            answers.append(f)
    assert [(f["type"], f["ref"]) for f in answers] == [
        ("ack", "a1"),
        ("pong", "a2"),
        ("error", "a3"),
        ("error", "a4"),
        ("sync_done", "a5"),
        ("pong", "a6"),
    ], answers
    await ws.close()


HUGE = 2**64 - 1
MAX_SEQ = 2**31 - 1


async def integers_and_keys_out_of_range(s: Setup) -> None:
    """Every integer is bounded at the edge (seqs to MAX_SEQ, the rest to int64) and must be
    a JSON integer; keys have no control characters: ``invalid`` / 422, never a 500, and
    the connection stays open. A body's control characters are removed."""
    ws = await s.ws()
    send = {"type": "send", "conv": s.conv, "body": "x"}
    bad: list[Frame] = [
        {**send, "client_msg_id": "r1", "reply_to": HUGE},
        {**send, "client_msg_id": "r2", "reply_to": MAX_SEQ + 1},
        {**send, "client_msg_id": "r3", "reply_to": -1},
        {**send, "client_msg_id": "r4", "reply_to": "3"},
        {**send, "client_msg_id": "r5", "reply_to": 3.0},
        {**send, "client_msg_id": "r6", "reply_to": True},
        {**send, "client_msg_id": "bad\r\nNats-Msg-Id: x"},
        {**send, "client_msg_id": "nul\u0000"},
        {"type": "sync", "positions": {s.conv: HUGE}},
        {"type": "sync", "positions": {s.conv: -1}},
        {"type": "delivered", "conv": s.conv, "seq": MAX_SEQ + 1},
        {"type": "read", "conv": s.conv, "seq": 10**30},
        {"type": "read", "conv": s.conv, "seq": "5"},
    ]
    for i, frame in enumerate(bad):
        f = {**frame, "ref": f"b{i}"}
        await ws.send(f)
        got = await ws.next()
        assert (got["type"], got.get("code"), got.get("ref")) == ("error", "invalid", f"b{i}"), (f, got)
    # a position past the end of the log is in range: nothing to replay, and it does not
    # mute the conversation's next events on this connection
    await ws.send({"type": "sync", "ref": "ok", "positions": {s.conv: MAX_SEQ}})
    assert (await ws.next())["type"] == "sync_done"
    # a body's control characters (but tab and line breaks) are removed, not stored
    await ws.send({**send, "ref": "c", "client_msg_id": "ctl", "body": "a\x00b\x1bc\td\n"})
    frames = [await ws.next()]
    assert frames[0]["type"] in ("ack", "event"), frames
    frames.append(await ws.next())
    ev = next(f for f in frames if f["type"] == "event")["event"]
    assert ev["body"] == "abc\td", ev
    await ws.close()
    # REST: 422 for what cannot be a seq or an int64; in-range limits are clamped
    h, base = s.user.headers, f"/v1/conversations/{s.conv}"
    for params in (
        {"before": HUGE},
        {"after": MAX_SEQ + 1},
        {"after": -1},
        {"limit": 2**63},
        {"limit": "many"},
        {"before": "1.5"},
    ):
        r = await s.api.http.get(f"{base}/messages", headers=h, params=params)
        assert (r.status_code, r.json()["code"]) == (422, "invalid"), (params, r.text)
    for limit in (10**6, -5):
        r = await s.api.http.get(f"{base}/messages", headers=h, params={"limit": limit, "after": 0})
        assert r.status_code == 200 and len(r.json()["events"]) == (3 if limit > 0 else 1), r.text
    for body in (
        {"client_msg_id": "x1", "body": "x", "reply_to": HUGE},
        {"client_msg_id": "x2", "body": "x", "reply_to": "3"},
        {"client_msg_id": "x\u0000", "body": "x"},
    ):
        r = await s.api.http.post(f"{base}/messages", headers=h, json=body)
        assert (r.status_code, r.json()["code"]) == (422, "invalid"), (body, r.text)
    for path, method, body in (
        (f"{base}/receipts", "POST", {"read_seq": HUGE}),
        (f"{base}/messages/{HUGE}", "PATCH", {"body": "y"}),
        (f"{base}/messages/{MAX_SEQ + 1}", "DELETE", None),
    ):
        r = await s.api.http.request(method, path, headers=h, json=body)
        assert (r.status_code, r.json()["code"]) == (422, "invalid"), (path, r.text)
    for path in ("/v1/users?q=a&limit=99999999999999999999", "/v1/channels?limit=-99999999999999999999"):
        r = await s.api.http.get(path, headers=h)
        assert (r.status_code, r.json()["code"]) == (422, "invalid"), (path, r.text)
    r = await s.api.http.get("/v1/channels", headers=h, params={"limit": 10**9})
    assert r.status_code == 200, r.text


SCENARIOS = [
    malformed_json,
    binary_frame,
    not_an_object_with_string_type,
    unknown_type,
    send_with_bad_fields,
    oversized_frame,
    first_frame_not_auth,
    no_auth_in_time,
    ping_pong,
    body_limits,
    answers_in_order,
    integers_and_keys_out_of_range,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
async def test_frame(gw: Cluster, scenario: Any) -> None:
    async with Api(gw.gateway_urls[0]) as api:
        await scenario(await setup(gw, api))


async def test_bad_frames_leave_other_clients_and_the_gateway_unaffected(gw: Cluster) -> None:
    async with Api(gw.gateway_urls[0]) as api:
        alice, bob = await api.register_login("alice"), await api.register_login("bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        pa = await Peer.connect(gw.ws_urls[0], alice)
        pb = await Peer.connect(gw.ws_urls[0], bob)
        assert (await pa.send_msg(conv, "before"))["seq"] == 3
        await pb.wait_for_seq(conv, 3)
        # everything at once, from other users' connections
        setups = [await setup(gw, api) for _ in SCENARIOS]
        await asyncio.gather(*(scenario(st) for scenario, st in zip(SCENARIOS, setups, strict=True)))
        assert not pa.ws.closed.is_set() and not pb.ws.closed.is_set()
        assert (await pa.send_msg(conv, "after, from alice"))["seq"] == 4
        assert (await pb.send_msg(conv, "after, from bob"))["seq"] == 5
        for p in (pa, pb):
            await p.wait_for_seq(conv, 5)
            assert [(e["seq"], e["body"]) for e in p.events] == [
                (3, "before"),
                (4, "after, from alice"),
                (5, "after, from bob"),
            ]
            assert p.other == []
            assert await p.call({"type": "ping", "ref": "still"}) == {
                "type": "pong",
                "ref": "still",
            }
        r = await api.http.get("/healthz")
        assert r.status_code == 200, r.text
        assert gw.dead() == []
        for p in (pa, pb):
            await p.close()
