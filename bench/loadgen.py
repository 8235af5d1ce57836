"""Load generator: C clients over the given gateways in ONE conversation, each sending at a
fixed rate (open loop: latency is measured from the scheduled send time, so a stalled
server is not hidden by a stalled client).

Reports send->ack and send->receive latency p50/p99 and persisted (acked) messages/s over
the steady window. Bounded: stops after --duration seconds of sending plus --drain seconds.
Loopback only.

    python bench/loadgen.py --gateway http://127.0.0.1:8080 --gateway http://127.0.0.1:8090 \
        --clients 10 --rate 500 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx
import orjson
import ws_lite  # bench/ws_lite.py

PASSWORD = "bench-password-1"


@dataclass
class Stats:
    sent: int = 0
    acked: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    ack_lat: list[float] = field(default_factory=list)
    ack_sent: list[float] = field(default_factory=list)  # when each acked send was due
    recv_lat: list[float] = field(default_factory=list)
    received: int = 0
    ack_times: list[float] = field(default_factory=list)
    # every send's first answer (ack or error), and what each acked id was stored at
    answer_lat: list[float] = field(default_factory=list)
    acked_seq: dict[str, int] = field(default_factory=dict)


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        sys.exit(f"refusing non-loopback target {url}")


async def setup(gateways: list[str], clients: int, convs: int = 1) -> tuple[list[str], list[dict]]:
    """``clients`` users; ``convs`` channels, client i a member of channel i % convs."""
    async with httpx.AsyncClient(base_url=gateways[0], timeout=60) as http:
        tag = uuid.uuid4().hex[:6]
        users = []
        for i in range(clients):
            name = f"bench{tag}{i}"
            r = await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
            r.raise_for_status()
            r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
            r.raise_for_status()
            users.append(r.json())
        ids = []
        for k in range(convs):
            h = {"Authorization": f"Bearer {users[k]['access_token']}"}  # its owner: client k
            r = await http.post("/v1/conversations", headers=h, json={"kind": "channel", "name": f"bench-{tag}-{k}"})
            r.raise_for_status()
            ids.append(r.json()["id"])
        for i, u in enumerate(users[convs:], start=convs):
            r = await http.post(
                f"/v1/conversations/{ids[i % convs]}/join", headers={"Authorization": f"Bearer {u['access_token']}"}
            )
            r.raise_for_status()
        return ids, users


async def client(
    i: int,
    url: str,
    user: dict,
    conv: str,
    rate: float,
    duration: float,
    drain: float,
    sent_at: dict[str, float],
    st: Stats,
    all_connected: asyncio.Barrier,
    closed_loop: bool = False,
) -> None:
    """Open loop: sends at ``rate`` on a fixed schedule. Closed loop: each send waits for the
    answer (ack or refusal) to the one before, for ``duration`` seconds."""
    answered = asyncio.Event()
    ws = await ws_lite.connect(url)  # frames parsed in a few lines: the generator stays cheap
    try:
        ws.send_text(orjson.dumps({"type": "auth", "token": user["access_token"]}))
        assert orjson.loads(await ws.recv())["type"] == "auth_ok"

        def on_text(raw: bytes, now: float) -> None:
            f = orjson.loads(raw)
            t = f.get("type")
            if t == "event":
                cmid = f["event"].get("client_msg_id")
                if cmid is not None and cmid in sent_at:
                    st.received += 1
                    st.recv_lat.append(now - sent_at[cmid])
            elif t == "ack":
                st.acked += 1
                st.ack_times.append(now)
                st.ack_lat.append(now - sent_at[f["client_msg_id"]])
                st.ack_sent.append(sent_at[f["client_msg_id"]])
                st.answer_lat.append(now - sent_at[f["client_msg_id"]])
                st.acked_seq[f["client_msg_id"]] = f["seq"]
                answered.set()
            elif t == "error":
                st.errors[f.get("code", "?")] = st.errors.get(f.get("code", "?"), 0) + 1
                if f.get("client_msg_id") in sent_at:
                    st.answer_lat.append(now - sent_at[f["client_msg_id"]])
                answered.set()

        ws.on_text = on_text
        await all_connected.wait()  # nobody sends before every member is connected
        stop_at = time.monotonic() + duration + drain
        interval = 1.0 / rate
        start = time.monotonic() + (i % 50) * interval / 50  # spread clients over the interval
        n = 0
        while closed_loop and not ws.closed.done():
            now = time.monotonic()
            if now - start >= duration:
                break
            cmid = f"{i}-{n}"
            sent_at[cmid] = now
            answered.clear()
            ws.send_text(orjson.dumps({"type": "send", "conv": conv, "client_msg_id": cmid, "body": f"closed {n}"}))
            st.sent += 1
            n += 1
            try:
                await asyncio.wait_for(answered.wait(), 10)
            except TimeoutError:
                break  # counted as unanswered
        while not closed_loop and not ws.closed.done():
            due = start + n * interval
            if due - start >= duration:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            cmid = f"{i}-{n}"
            sent_at[cmid] = due
            ws.send_text(
                orjson.dumps(
                    {"type": "send", "conv": conv, "client_msg_id": cmid, "body": f"bench message {n} from {i}"}
                )
            )
            st.sent += 1
            n += 1
        # the tail: answers and events still on their way
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ws.closed), max(0.01, stop_at - time.monotonic()))
    finally:
        ws.close()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


async def run(args: argparse.Namespace) -> dict:
    for g in args.gateway:
        _check_loopback(g)
    convs, users = await setup(args.gateway, args.clients, args.convs)
    ws_urls = [g.replace("http://", "ws://").rstrip("/") + "/ws" for g in args.gateway]
    st = Stats()
    sent_at: dict[str, float] = {}
    per_client = args.rate / args.clients
    barrier = asyncio.Barrier(args.clients)
    t0 = time.monotonic()
    await asyncio.gather(
        *(
            client(
                i,
                ws_urls[i % len(ws_urls)],
                u,
                convs[i % len(convs)],
                per_client,
                args.duration,
                args.drain,
                sent_at,
                st,
                barrier,
                args.closed,
            )
            for i, u in enumerate(users)
        )
    )
    # Sustained persisted rate: acks in the steady window (skip the first and last 10 %).
    lo, hi = t0 + 0.1 * args.duration, t0 + 0.9 * args.duration
    steady = [t for t in st.ack_times if lo <= t <= hi]
    steady_rate = len(steady) / (hi - lo) if hi > lo else 0.0
    # every acked message reaches every member of its sender's conversation
    members = [sum(1 for i in range(args.clients) if i % len(convs) == k) for k in range(len(convs))]
    expected_recv = sum(members[int(cmid.split("-")[0]) % len(convs)] for cmid in st.acked_seq)
    lost = await verify(args.gateway[0], users[0], convs[0], st.acked_seq) if args.verify else None
    return {
        "clients": args.clients,
        "convs": len(convs),
        "closed_loop": args.closed,
        "gateways": len(args.gateway),
        "offered_rate": args.rate,
        "duration_s": args.duration,
        "sent": st.sent,
        "acked": st.acked,
        "errors": st.errors,
        "persisted_per_s_steady": round(steady_rate, 1),
        "ack_ms": {"p50": round(pct(st.ack_lat, 0.5), 2), "p99": round(pct(st.ack_lat, 0.99), 2)},
        "recv_ms": {"p50": round(pct(st.recv_lat, 0.5), 2), "p99": round(pct(st.recv_lat, 0.99), 2)},
        "deliveries": st.received,
        "deliveries_expected": expected_recv,
        "answered": len(st.answer_lat),
        "answer_ms": {"p99": round(pct(st.answer_lat, 0.99), 2), "max": round(max(st.answer_lat, default=0) * 1000, 2)},
        "answered_within_2s": sum(1 for x in st.answer_lat if x <= 2.0),
        "acked_not_stored": lost,
        "ack_ms_by_second": by_second(st.ack_sent, st.ack_lat, t0),
    }


def by_second(sent: list[float], lat: list[float], t0: float) -> list[list[float]]:
    """[second since start, acks, p50 ms, p99 ms] of the acked sends due in each second: where
    in the run the tail happened (a start-up transient, or spread over the run)."""
    buckets: dict[int, list[float]] = {}
    for s, x in zip(sent, lat, strict=True):
        buckets.setdefault(int(s - t0), []).append(x)
    return [[k, len(v), round(pct(v, 0.5), 1), round(pct(v, 0.99), 1)] for k, v in sorted(buckets.items())]


async def verify(gateway: str, user: dict, conv: str, acked: dict[str, int]) -> int:
    """Acked messages missing from history (or stored at another seq than acked)."""
    stored: dict[str, int] = {}
    after = 0
    h = {"Authorization": f"Bearer {user['access_token']}"}
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        while True:
            r = await http.get(f"/v1/conversations/{conv}/messages", headers=h, params={"after": after, "limit": 200})
            r.raise_for_status()
            page = r.json()
            for e in page["events"]:
                if e.get("client_msg_id") is not None:
                    stored[e["client_msg_id"]] = e["seq"]
            if not page["events"] or not page["has_more"]:
                return sum(1 for cmid, seq in acked.items() if stored.get(cmid) != seq)
            after = page["events"][-1]["seq"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", action="append", required=True, help="gateway base URL (repeat)")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rate", type=float, default=500, help="messages/s offered in total")
    ap.add_argument("--duration", type=float, default=20, help="seconds of sending (max 600)")
    ap.add_argument("--drain", type=float, default=5, help="seconds to wait for the tail")
    ap.add_argument("--verify", action="store_true", help="check every acked message is in history at its seq")
    ap.add_argument("--convs", type=int, default=1, help="channels; client i is in channel i %% convs")
    ap.add_argument("--closed", action="store_true", help="closed loop: each client waits for its answer")
    args = ap.parse_args()
    args.duration = min(args.duration, 600)
    if args.verify and args.convs != 1:
        sys.exit("--verify checks one conversation: use --convs 1")
    if not 1 <= args.convs <= args.clients:
        sys.exit("--convs must be between 1 and --clients")
    try:  # the generator shares the cores with the system under test: keep it cheap
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
