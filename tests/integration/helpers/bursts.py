"""A burst of pipelined sends over one WebSocket, retried with the same client_msg_id until
acked, and the checks that nothing acknowledged was lost, duplicated or reordered (the crash
fault tests: test_faults.py, test_faults_infra.py)."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from chat_devtools.cluster import Cluster
from chat_devtools.eventlog import conv_events
from chat_devtools.testing import NO_RATE_LIMITS

from helpers.chat_client import Api, User, Ws

N_MESSAGES = 2000
WINDOW = 50
KILL_AFTER_ACKS = 500
TOTAL_DEADLINE_S = 120.0
# The gateway answers `unavailable` after GATEWAY_SEND_TIMEOUT_S (10 s); a send with no
# answer at all well beyond that is sent again.
ANSWER_TIMEOUT_S = 20.0
MAX_ATTEMPTS = 25
RETRY_DELAY_S = 0.25
# One user sends the whole burst as fast as it can: not a rate-limit test, so the gateway's
# send and per-connection frame buckets (250 + 10/s; 500 + 100/s) are off here.
BURST_ENV = NO_RATE_LIMITS


@dataclass
class Burst:
    acks: dict[str, int] = field(default_factory=dict)  # client_msg_id -> seq from its ack
    ack_info: dict[str, str] = field(default_factory=dict)  # client_msg_id -> ref, ts, when
    attempts: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    timeouts: int = 0
    reconnects: int = 0
    ack_conflicts: list[str] = field(default_factory=list)
    order_violations: list[str] = field(default_factory=list)
    fault_at: float | None = None
    recovered_at: float | None = None  # first ack after the fault finished
    fault_done_at: float | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def summary(self) -> str:
        retried = sum(1 for v in self.attempts.values() if v > 1)
        el = (self.finished or time.monotonic()) - self.started
        rec = f"{self.recovered_at - self.fault_at:.1f}s" if self.recovered_at and self.fault_at else "n/a"
        return (
            f"acked {len(self.acks)}/{N_MESSAGES} in {el:.1f}s; retried {retried} ids "
            f"({sum(self.attempts.values())} sends); errors {dict(self.errors)}; "
            f"timeouts {self.timeouts}; reconnects {self.reconnects}; first ack after fault {rec}"
        )


async def run_burst(
    ws_url: str,
    user: User,
    conv: str,
    fault: Callable[[], Awaitable[None]],
    *,
    n: int = N_MESSAGES,
    window: int = WINDOW,
    fault_after: int = KILL_AFTER_ACKS,
) -> Burst:
    """Send ``n`` messages, pipelined ``window`` deep; run ``fault()`` (concurrently) once
    ``fault_after`` are acked; retry refused/unanswered sends with the same client_msg_id."""
    b = Burst()
    ids = [f"burst-{i:05d}" for i in range(n)]
    todo: collections.deque[str] = collections.deque(ids)
    retry: collections.deque[tuple[float, str]] = collections.deque()  # (not before, id)
    inflight: dict[str, tuple[str, float]] = {}  # ref -> (client_msg_id, sent at)
    last_live_seq = 0
    fault_task: asyncio.Task[None] | None = None

    async def do_fault() -> None:
        b.fault_at = time.monotonic()
        await fault()
        b.fault_done_at = time.monotonic()

    ws = await Ws.connect(ws_url, user.access_token)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TOTAL_DEADLINE_S
    try:
        while len(b.acks) < n:
            now = loop.time()
            assert now < deadline, f"not all acked within {TOTAL_DEADLINE_S}s: {b.summary()}"
            if ws.closed.is_set():
                # the gateway is not the fault target, but a client must survive this too
                b.reconnects += 1
                assert b.reconnects <= 20, b.summary()
                await ws.close()
                try:
                    ws = await Ws.connect(ws_url, user.access_token)
                except (OSError, websockets.WebSocketException, AssertionError, TimeoutError):
                    await asyncio.sleep(0.5)
                    continue
                for cmid, _ in inflight.values():
                    retry.append((now, cmid))
                inflight.clear()
                last_live_seq = 0  # across reconnects order is not promised
            # fill the window: due retries first, then new ids
            while len(inflight) < window:
                if retry and retry[0][0] <= now:
                    cmid = retry.popleft()[1]
                elif todo:
                    cmid = todo.popleft()
                else:
                    break
                if cmid in b.acks:
                    continue
                b.attempts[cmid] += 1
                assert b.attempts[cmid] <= MAX_ATTEMPTS, f"{cmid}: too many attempts; {b.summary()}"
                ref = f"{cmid}/{b.attempts[cmid]}"
                inflight[ref] = (cmid, now)
                try:
                    await ws.send(
                        {
                            "type": "send",
                            "ref": ref,
                            "conv": conv,
                            "client_msg_id": cmid,
                            "body": f"message {cmid}",
                        }
                    )
                except websockets.ConnectionClosed:
                    break
            try:
                f = await ws.next(timeout=0.5)
            except TimeoutError:
                f = None
            if f is not None:
                t = f.get("type")
                if t == "ack":
                    inflight.pop(f.get("ref", ""), None)
                    cmid, seq = f["client_msg_id"], f["seq"]
                    assert f["conv"] == conv and isinstance(seq, int), f
                    if cmid in b.acks and b.acks[cmid] != seq:
                        b.ack_conflicts.append(f"{cmid}: acked with seq {b.acks[cmid]} and {seq}")
                    if cmid not in b.acks:
                        b.acks[cmid] = seq
                        since = time.monotonic() - (b.fault_at or b.started)
                        b.ack_info[cmid] = f"ref {f.get('ref')} ts {f.get('ts')} at fault{since:+.2f}s"
                    if b.fault_done_at is not None and b.recovered_at is None:
                        b.recovered_at = time.monotonic()
                    if fault_task is None and len(b.acks) >= fault_after:
                        fault_task = asyncio.create_task(do_fault())
                elif t == "error":
                    code = f.get("code", "?")
                    b.errors[code] += 1
                    ref = f.get("ref", "")
                    cmid = inflight.pop(ref, (str(f.get("client_msg_id") or ""), 0.0))[0]
                    assert code in ("unavailable", "rate_limited"), f"send refused: {f}"
                    if cmid and cmid not in b.acks:
                        delay = max(RETRY_DELAY_S, (f.get("retry_after_ms") or 0) / 1000)
                        retry.append((loop.time() + delay, cmid))
                elif t == "event":
                    ev = f["event"]
                    if ev["conv"] == conv:
                        if ev["seq"] <= last_live_seq:
                            b.order_violations.append(f"live seq {ev['seq']} after {last_live_seq}")
                        last_live_seq = max(last_live_seq, ev["seq"])
            # sends with no answer in time: send again (the late answer still counts)
            now = loop.time()
            for ref, (cmid, sent) in list(inflight.items()):
                if now - sent > ANSWER_TIMEOUT_S:
                    del inflight[ref]
                    b.timeouts += 1
                    if cmid not in b.acks:
                        retry.append((now, cmid))
        b.finished = time.monotonic()
        assert fault_task is not None, "the fault never ran"
        await asyncio.wait_for(fault_task, timeout=60)
    finally:
        if fault_task is not None and not fault_task.done():
            fault_task.cancel()
        await ws.close()
    return b


async def check_log(api: Api, user: User, conv: str, b: Burst, n_members: int) -> list[dict[str, Any]]:
    events = await api.all_events(user, conv)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)), "history seqs are not gap-free 1..N"
    assert len(events) == n_members + N_MESSAGES, f"{len(events)} events for {N_MESSAGES} messages"
    msgs = [e for e in events if e["kind"] == "message"]
    members = [e for e in events if e["kind"] == "member_joined"]
    assert len(members) == n_members and len(msgs) == N_MESSAGES, collections.Counter(e["kind"] for e in events)
    ids = [e.get("client_msg_id") for e in msgs]
    dupes = [k for k, v in collections.Counter(ids).items() if v > 1]
    assert not dupes, f"client_msg_ids stored more than once: {dupes[:10]} ({len(dupes)})"
    by_id = {e["client_msg_id"]: e for e in msgs}
    assert set(by_id) == set(b.acks), "history and acks disagree"
    wrong = [(k, b.acks[k], e["seq"]) for k, e in by_id.items() if b.acks[k] != e["seq"]]
    assert not wrong, f"ack seq != stored seq: {wrong[:10]} ({len(wrong)})"
    bad_body = [e["seq"] for e in msgs if e["body"] != f"message {e['client_msg_id']}" or e["sender"] != user.id]
    assert not bad_body, bad_body[:10]
    return events


async def setup_pair(c: Cluster) -> tuple[Api, User, str]:
    api = Api(c.gateway_url)
    try:
        alice, bob = await api.register_login("alice"), await api.register_login("bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
    except BaseException:
        await api.close()  # else its socket outlives the test and fails the next one
        raise
    return api, alice, conv


async def assert_clean(api: Api, user: User, conv: str, b: Burst, c: Cluster) -> None:
    """Acks consistent with each other, then with the stored log; a failure says which ids."""
    assert not b.ack_conflicts, b.ack_conflicts[:10]
    assert not b.order_violations, b.order_violations[:10]
    assert len(b.acks) == N_MESSAGES, b.summary()
    by_seq: dict[int, list[str]] = collections.defaultdict(list)
    for cmid, seq in b.acks.items():
        by_seq[seq].append(cmid)
    shared = {seq: ids for seq, ids in by_seq.items() if len(ids) > 1}
    if shared:
        events = await api.all_events(user, conv)
        stored = {e.get("client_msg_id"): e["seq"] for e in events if e["kind"] == "message"}
        detail = [
            f"seq {seq}: acked for {ids}; stored at {[stored.get(i) for i in ids]}; "
            f"acks {[b.ack_info.get(i) for i in ids]}"
            for seq, ids in sorted(shared.items())[:10]
        ]
        raise AssertionError(
            f"{len(shared)} seqs acked for more than one client_msg_id "
            f"(history: {len(events)} events, max seq {events[-1]['seq'] if events else 0}); "
            f"logs in {c.log_dir}:\n" + "\n".join(detail)
        )
    events = await check_log(api, user, conv, b, n_members=2)
    await assert_in_stream(c, conv, [e["seq"] for e in events])


# A stored event whose publication a crash interrupted is published when its command is
# redelivered (MESSAGES_ACK_WAIT_S later) or retried after a backoff: well within this.
IN_STREAM_WITHIN_S = 45.0


async def assert_in_stream(c: Cluster, conv: str, stored: list[int]) -> None:
    """Every stored event of ``conv`` reaches the event stream (docs/guarantees.md §1: the
    commands are acked to JetStream only after their events are in it), within a redelivery."""
    deadline = time.monotonic() + IN_STREAM_WITHIN_S
    while True:
        nc = await c.connect_nats()
        try:
            published = {p.seq for p in await conv_events(nc.jetstream(), conv)}
        finally:
            await nc.close()
        missing = sorted(set(stored) - published)
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert not missing, f"{len(missing)} stored events never reached CHAT_EVENTS, e.g. seqs {missing[:10]}"
