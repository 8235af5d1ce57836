"""History and sync benchmark (performance issue, target 6), on PostgreSQL.

1. A stack on loopback: NATS, a throwaway PostgreSQL 15 (durable commits), auth, messages
   and ONE gateway (rate limits off as in run.py; cheap password hashing).
2. One group of 5 users; --events ``message`` events are written into it with COPY straight
   into the messages database (``history_load.py``: chunks of --chunk rows, each one
   transaction that also moves ``conversations.last_seq``; progress printed; stopped after
   --load-timeout s), then ``VACUUM (ANALYZE) events``, a CHECKPOINT, and a wait until the
   kernel has written back what the load left dirty (``settle``). --other-per-event K also writes K
   events of --other-convs other conversations per event, interleaved (a shared table in
   which one conversation's page is spread over many heap pages).
3. The sync set-up through the API: a user in --sync-convs groups, each of which then gets
   --sync-events messages (``history_sync.py``).
4. --repeat runs of:
   a. REST pages: --readers concurrent readers (closed loop, each its own keep-alive
      connection to the gateway, ``history_http.py``, one process) GET
      ``/v1/conversations/{id}/messages?limit=50`` with ``before`` uniform over the whole
      conversation and, one page in --newest-every, no ``before`` (the newest page);
      --pages pages after --warmup, at most --duration s; then a third as many from ONE
      reader (the latency of a page with nothing queued beside it). Every page is checked
      (50 events, the right seqs). Server CPU per page from /proc.
   b. The store query alone: the exact statement the messages service runs for a page
      (``history_store.page_query`` compiled for asyncpg), prepared once on a direct asyncpg
      connection, timed from the client for --sql-samples random positions, and the
      server's own execution time from ``EXPLAIN (ANALYZE)`` of --explain-samples of them;
      the same positions through ``history_store.page`` (SQLAlchemy, rows to wire dicts)
      and through the whole messages handler (``Conversations.history``), in this process.
   c. Sync: --syncs fresh WebSocket connections one after another (``history_ws.py``), each
      ``sync`` for all groups; time from the frame written to ``sync_done`` read, and server
      CPU per sync.
5. The plans (``EXPLAIN (ANALYZE, BUFFERS)``: newest, middle and old page, custom and
   generic plans; one sync statement), then one ``send`` over REST, which must get seq
   last_seq + 1. Prints one JSON line per run and the medians.

Bounded: every phase has a count and a time limit, the loader a timeout, the whole run a
--max-minutes watchdog; loopback only. One benchmark at a time on the 2-core box.

    .venv/bin/python bench/history.py                       # 10,000,000 events
    .venv/bin/python bench/history.py --events 200000 --repeat 1 --pages 1000 --syncs 50
    .venv/bin/python bench/history.py --events 1000000 --other-per-event 4 --other-convs 50
    .venv/bin/python bench/history.py --events 200000 --repeat 1 --profile /tmp/hist-prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import uvloop
from chat_devtools.cluster import Cluster
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.postgres import PostgresServer, asyncpg_dsn
from chat_devtools.testing import NO_AUTH_BUDGETS, NO_RATE_LIMITS

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from history_http import HttpConn  # noqa: E402
from history_load import Loader  # noqa: E402
from history_sync import SyncSamples, SyncSetup, login, measure_sync, register, setup_sync  # noqa: E402
from run import cpu_snapshot, summarize_profile  # noqa: E402

PAGE = 50
ENV = {
    **NO_RATE_LIMITS,
    **NO_AUTH_BUDGETS,
    "GATEWAY_RATE_WRITE_BURST": "0",
    "AUTH_ENVIRONMENT": "test",
    "AUTH_ARGON2_MEMORY_KIB": "1024",
    "AUTH_ARGON2_TIME_COST": "1",
}
# The bulk load writes ~4 GB of WAL at 10M events: fewer forced checkpoints. Reads are
# unaffected; everything else is TEST_SETTINGS (shared_buffers 64MB, fsync on).
PG_SETTINGS = {"max_wal_size": "8GB", "checkpoint_timeout": "30min"}


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 3)


def summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50": pct(xs, 50), "p99": pct(xs, 99), "max": pct(xs, 100)}


# --- the stack ------------------------------------------------------------------------------
@contextlib.contextmanager
def stack(args: argparse.Namespace) -> Iterator[tuple[Cluster, PostgresServer, str]]:
    with tempfile.TemporaryDirectory(prefix="chat-history-") as d:
        tmp = Path(d)
        nats = NatsServer(tmp / "nats", accounts=[ChatAccount.generate()]).start()
        settings = {**PG_SETTINGS, **dict(s.split("=", 1) for s in args.pg_setting)}
        pg = PostgresServer(settings=settings).start()
        cluster = None
        try:
            urls = {svc: pg.create_database(f"bench_{svc}") for svc in ("auth", "messages")}
            env = {**ENV, **dict(e.split("=", 1) for e in args.env)}
            cluster = Cluster(
                nats.url,
                nats=nats,
                database_urls=urls,
                data_dir=tmp,
                log_dir=tmp / "logs",
                gateways=1,
                log_level="WARNING",
                env=env,
                media=False,
                search=False,
            ).start()
            yield cluster, pg, asyncpg_dsn(pg.base_url, "bench_messages")
        finally:
            if cluster is not None:
                cluster.stop()
            pg.destroy()
            nats.stop()


async def setup_big(base: str, tag: str) -> tuple[str, list[dict[str, Any]]]:
    """A group of an owner and 4 readers; returns (conv, [owner, *readers])."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        users = [await register(http, f"hh{tag}u{i}") for i in range(5)]
        r = await http.post(
            "/v1/conversations",
            headers=users[0]["h"],
            json={"kind": "group", "members": [u["user"]["id"] for u in users[1:]]},
        )
        r.raise_for_status()
        return r.json()["id"], users


def dirty_mib() -> float:
    """The kernel's dirty and under-writeback page cache, MiB."""
    kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(("Dirty:", "Writeback:")):
            kib += int(line.split()[1])
    return kib / 1024


async def settle(dsn: str, timeout_s: float) -> float:
    """After the load: a CHECKPOINT (PostgreSQL's dirty buffers written now, not by the
    checkpointer during the measurements), then wait until the kernel has written back
    what the load left dirty (several GB at 10M events; the writeback slowed every read
    after it). Bounded by ``timeout_s``; returns the seconds it took."""
    t0 = time.monotonic()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT", timeout=timeout_s)
    finally:
        await conn.close()
    last = 0.0
    while (d := dirty_mib()) > 64 and time.monotonic() - t0 < timeout_s:
        if time.monotonic() - last > 10:
            print(f"  settling: {d:,.0f} MiB dirty in the page cache", flush=True)
            last = time.monotonic()
        await asyncio.sleep(1)
    return round(time.monotonic() - t0, 1)


async def fresh_tokens(base: str, users: list[dict[str, Any]]) -> list[str]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        return [(await login(http, u["name"]))["access_token"] for u in users]


# --- a. REST pages ----------------------------------------------------------------------------
def positions(rng: random.Random, first: int, last: int, newest_every: int) -> Iterator[int | None]:
    """``before`` values: uniform over the conversation (always a full page), and every
    ``newest_every``-th on average None (the newest page)."""
    while True:
        yield None if rng.randrange(newest_every) == 0 else rng.randint(first + PAGE, last + 1)


def check_page(body: bytes, before: int | None, last: int) -> str | None:
    page = orjson.loads(body)
    evs = page["events"]
    top = last if before is None else before - 1
    if len(evs) != PAGE or evs[-1]["seq"] != top or evs[0]["seq"] != top - PAGE + 1 or not page["has_more"]:
        return f"before={before}: {len(evs)} events, last seq {evs[-1]['seq'] if evs else None}"
    return None


async def rest_pages(
    base: str,
    conv: str,
    tokens: list[str],
    first: int,
    last: int,
    args: argparse.Namespace,
    seed: int,
    readers: int | None = None,
    pages: int | None = None,
) -> dict[str, Any]:
    lat: list[float] = []
    newest: list[float] = []
    errors: list[str] = []
    warm = args.warmup
    readers = readers or args.readers
    todo = args.warmup + (pages or args.pages)
    deadline = time.monotonic() + args.duration
    rng = random.Random(seed)
    gen = positions(rng, first, last, args.newest_every)

    async def reader(token: str) -> None:
        nonlocal todo, warm
        http = await HttpConn(base).open()
        try:
            while todo > 0 and time.monotonic() < deadline:
                todo -= 1
                before = next(gen)
                path = f"/v1/conversations/{conv}/messages?limit={PAGE}" + (f"&before={before}" if before else "")
                t0 = time.perf_counter()
                status, body = await http.get(path, token)
                ms = (time.perf_counter() - t0) * 1000
                if status != 200:
                    errors.append(f"{status}: {body[:200]!r}")
                    continue
                bad = check_page(body, before, last)
                if bad:
                    errors.append(bad)
                if warm > 0:
                    warm -= 1
                    continue
                lat.append(ms)
                if before is None:
                    newest.append(ms)
        finally:
            await http.close()

    t0 = time.monotonic()
    await asyncio.gather(*(reader(tokens[i % len(tokens)]) for i in range(readers)))
    span = time.monotonic() - t0
    return {
        "ms": summary(lat),
        "newest_ms": summary(newest),
        "pages_per_s": round((len(lat) + args.warmup) / span, 1),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


# --- b. the store query alone -----------------------------------------------------------------
def render(stmt: Any, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """A statement as SQLAlchemy's asyncpg dialect sends it, and its positional args."""
    from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

    c = stmt.compile(dialect=pg_asyncpg.dialect())
    bound = c.construct_params(params)
    return str(c), [bound[k] for k in c.positiontup or ()]


def page_sql(conv: str, user: str, before: int | None, limit: int = PAGE) -> tuple[str, list[Any]]:
    """The statement the messages service runs for a page of ``limit`` (it asks for one
    more row, to know whether there are more): ``history_store.page_query``."""
    try:
        from chat_messages.history_store import page_query
    except ImportError:  # the service before this benchmark's changes (bench/README.md, "before")
        return _page_sql_before(conv, before, limit)
    return render(*page_query(conv, user, before, None, limit + 1))


def _page_sql_before(conv: str, before: int | None, limit: int) -> tuple[str, list[Any]]:
    from chat_messages.models import events as E
    from sqlalchemy import select

    q = select(E).where(E.c.conv_id == conv)
    if before is not None:
        q = q.where(E.c.seq < before)
    return render(q.order_by(E.c.seq.desc()).limit(limit + 1), {})


async def store_query(
    dsn: str, conv: str, reader: str, first: int, last: int, args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    """The store query alone (asyncpg, prepared; and the server's own execution time), the
    store call (SQLAlchemy, rows to wire dicts) and the whole messages handler, in this
    process, each for the same --sql-samples positions."""
    from chat_common.db import make_engine
    from chat_messages.conversations import Conversations
    from chat_messages.store import Store
    from chat_proto.messages_api import HistoryQuery

    rng = random.Random(seed)
    gen = positions(rng, first, last, args.newest_every)
    befores = [next(gen) for _ in range(args.sql_samples)]
    conn = await asyncpg.connect(dsn)
    try:
        stmts = {b is None: await conn.prepare(page_sql(conv, reader, b)[0]) for b in (last, None)}
        sql_ms: list[float] = []
        for b in befores:
            _, params = page_sql(conv, reader, b)
            t0 = time.perf_counter()
            rows = await stmts[b is None].fetch(*params)
            sql_ms.append((time.perf_counter() - t0) * 1000)
            assert len(rows) == PAGE + 1
        exec_ms: list[float] = []
        for b in befores[: args.explain_samples]:
            sql, params = page_sql(conv, reader, b)
            plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *params)
            exec_ms.append(float(json.loads(plan)[0]["Execution Time"]))
    finally:
        await conn.close()
    engine = make_engine("postgresql+asyncpg://" + dsn.split("://", 1)[1], pool_size=1)
    store = Store(engine)
    convs = Conversations(store, None, None)  # type: ignore[arg-type]  # reads only
    store_ms: list[float] = []
    handler_ms: list[float] = []
    try:
        for b in befores:
            async with store.read() if hasattr(store, "read") else store.tx() as c:
                t0 = time.perf_counter()
                n = await _store_page(c, store, conv, reader, b)
                store_ms.append((time.perf_counter() - t0) * 1000)
            assert n == PAGE
        for b in befores:
            t0 = time.perf_counter()
            page = await convs.history(reader, HistoryQuery(conv=conv, before=b, limit=PAGE))
            handler_ms.append((time.perf_counter() - t0) * 1000)
            assert len(page["events"]) == PAGE
    finally:
        await engine.dispose()
    return {
        "sql_ms": summary(sql_ms),
        "server_exec_ms": summary(exec_ms),
        "store_history_ms": summary(store_ms),
        "handler_ms": summary(handler_ms),
    }


async def _store_page(c: Any, store: Any, conv: str, reader: str, before: int | None) -> int:
    try:
        from chat_messages import history_store
    except ImportError:  # before
        evs, _ = await store.history(c, conv, before, None, PAGE)
        return len(evs)
    _, evs, _ = await history_store.page(c, conv, reader, before, None, PAGE)
    return len(evs)


async def explain_all(dsn: str, conv: str, reader: str, first: int, last: int, sync: SyncSetup) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements the service runs: pages (custom and
    generic plans) and one sync call."""
    mid = first + (last - first) // 2
    out: list[str] = []
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT count(*) FROM events")
        sizes = await conn.fetch(
            "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) AS size FROM pg_class c "
            "WHERE c.relname IN ('events','events_pkey','uq_events_send_key','ix_events_target') ORDER BY c.relname"
        )
        out.append(f"events: {total:,} rows; " + ", ".join(f"{r['relname']} {r['size']}" for r in sizes))
        cases = [
            ("the newest page (no before)", None),
            (f"a middle page (before={mid})", mid),
            (f"an old page (before={first + PAGE + 7})", first + PAGE + 7),
        ]
        for title, before in cases:
            sql, params = page_sql(conv, reader, before)
            plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *params)
            out.append(f"\n-- {title}: custom plan\n" + _sql_with(sql, params))
            out += [r[0] for r in plan]
        # The service's statements are prepared (asyncpg) and PostgreSQL switches a prepared
        # statement to a generic plan after 5 runs: that is the plan it really runs.
        sql, params = page_sql(conv, reader, mid)
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE page AS {sql}")
        execute = "EXECUTE page(" + ", ".join(f"'{p}'" if isinstance(p, str) else str(p) for p in params) + ")"
        plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {execute}")
        out.append(f"\n-- a middle page, GENERIC plan (plan_cache_mode = force_generic_plan): {execute}")
        out += [r[0] for r in plan]
        await conn.execute("RESET plan_cache_mode")
        out += await _explain_sync(conn, sync)
    finally:
        await conn.close()
    return "\n".join(out)


async def _explain_sync(conn: asyncpg.Connection, sync: SyncSetup) -> list[str]:
    """The first statement of a sync call: the conversations expected to hold at most
    SYNC_ROWS_PER_QUERY events together (``history_store.sync_group``)."""
    try:
        from chat_messages.history_store import ranges_query, sync_group
    except ImportError:  # before: one range query per conversation (the page plans show its shape)
        return ["\n-- sync: one range query per conversation (the shape of the pages above, after=)"]
    from chat_proto.messages_api import SyncPosition

    todo = [SyncPosition(conv=c, after=a) for c, a in sync.positions.items()]
    last = {c: a + sync.events_per_conv for c, a in sync.positions.items()}
    wanted = [(p.conv, p.after) for p in sync_group(todo, last, 500)]
    sql, params = render(*ranges_query(wanted, 501))
    plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *params)
    shown = f"the first of {len(todo)} conversations' statements: {len(wanted)} of them, 500 + 1 events at most each"
    return [f"\n-- one sync call ({shown})\n" + " ".join(sql.split()), *(r[0] for r in plan)]


def _sql_with(sql: str, params: list[Any]) -> str:
    return " ".join(sql.split()) + "  -- " + ", ".join(repr(p) for p in params)


async def final_send(base: str, conv: str, owner: str, last: int) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        u = await login(http, owner)
        r = await http.post(
            f"/v1/conversations/{conv}/messages", headers=u["h"], json={"client_msg_id": "after-load", "body": "next"}
        )
        r.raise_for_status()
        seq = int(r.json()["seq"])
    if seq != last + 1:
        raise RuntimeError(f"a send after the load got seq {seq}, expected {last + 1}")
    return seq


# --- the run ----------------------------------------------------------------------------------
async def run(args: argparse.Namespace, cluster: Cluster, pg: PostgresServer, dsn: str) -> None:
    base, ws = cluster.gateway_url, cluster.ws_urls[0]
    tag = os.urandom(3).hex()
    conv, users = await setup_big(base, tag)
    print(f"group {conv}: loading {args.events:,} events with COPY", flush=True)
    other_convs: list[str] = []
    if args.other_per_event:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for _ in range(args.other_convs):
                r = await http.post(
                    "/v1/conversations",
                    headers=users[0]["h"],
                    json={"kind": "group", "members": [users[1]["user"]["id"]]},
                )
                r.raise_for_status()
                other_convs.append(r.json()["id"])
    loader = Loader(
        dsn,
        conv,
        [u["user"]["id"] for u in users],
        chunk=args.chunk,
        other_convs=other_convs,
        other_per_event=args.other_per_event,
    )
    res = await loader.load(args.events, args.load_timeout)
    first, last = res.first_seq, res.last_seq
    load = {
        "events": res.rows,
        "other_events": res.other_rows,
        "load_s": round(res.seconds, 1),
        "rows_per_s": round((res.rows + res.other_rows) / res.seconds),
        "vacuum_analyze_s": round(res.vacuum_s, 1),
        "seqs": [first, last],
    }
    load["settle_s"] = await settle(dsn, args.settle_timeout)
    print("LOADED " + json.dumps(load), flush=True)
    print(f"sync set-up: {args.sync_convs} groups x {args.sync_events} messages through the API", flush=True)
    sync_setup = await setup_sync(base, args.sync_convs, args.sync_events)
    print(f"  done in {sync_setup.setup_s:.1f} s", flush=True)

    groups = {"gateway": cluster.gateways[0].pid or 0, "messages": cluster.messages[0].pid or 0}
    groups |= {"postgres": pg.postmaster_pid() or 0, "nats": cluster.nats.pid if cluster.nats else 0}
    rows: list[dict[str, Any]] = []
    for i in range(args.repeat):
        tokens = await fresh_tokens(base, users[1:])
        cpu0, t0 = cpu_snapshot(groups), time.monotonic()
        pages = await rest_pages(base, conv, tokens, first, last, args, seed=1000 + i)
        cpu1, span = cpu_snapshot(groups), time.monotonic() - t0
        n = pages["ms"]["n"] + args.warmup
        pages["cpu_us_per_page"] = {k: round(1e6 * (cpu1[k] - cpu0[k]) / max(n, 1)) for k in groups}
        pages["cpu_pct"] = {k: round(100 * (cpu1[k] - cpu0[k]) / span) for k in groups}
        # The same pages from ONE reader: the latency of a page when nothing queues behind another.
        one = await rest_pages(base, conv, tokens, first, last, args, seed=3000 + i, readers=1, pages=args.pages // 3)
        pages["one_reader_ms"] = one["ms"]
        pages["errors"] += one["errors"]
        store = await store_query(dsn, conv, users[1]["user"]["id"], first, last, args, seed=2000 + i)
        cpu0 = cpu_snapshot(groups)
        samples: SyncSamples = await measure_sync(base, ws, sync_setup, args.syncs, args.duration)
        cpu1 = cpu_snapshot(groups)
        sync = {"sync_ms": summary(samples.sync_ms), "connect_to_done_ms": summary(samples.total_ms)}
        n = max(len(samples.sync_ms), 1)  # per sync, its connection's set-up included
        sync["cpu_ms_per_sync"] = {k: round(1000 * (cpu1[k] - cpu0[k]) / n, 1) for k in groups}
        sync["client_cpu_ms"] = summary(samples.client_cpu_ms)  # the benchmark's own share of the 2 cores
        sync |= {"bad": len(samples.bad), "first_bad": samples.bad[:3]}
        row = {"run": i + 1, "pages": pages, "store": store, "sync": sync}
        rows.append(row)
        print("RUN " + json.dumps(row), flush=True)
    if args.profile:
        await profile_pages(args, cluster, conv, users, first, last, sync_setup)
    plans = await explain_all(dsn, conv, users[1]["user"]["id"], first, last, sync_setup)
    print("\nPLANS\n" + plans, flush=True)
    seq = await final_send(base, conv, users[0]["name"], last)
    print(f"\nSEND after the load: seq {seq} = last_seq {last} + 1 (ok)", flush=True)
    print_medians(rows, load, sync_setup, args)


async def profile_pages(
    args: argparse.Namespace,
    cluster: Cluster,
    conv: str,
    users: list[dict[str, Any]],
    first: int,
    last: int,
    s: SyncSetup,
) -> None:
    """One more pages run and one more sync run while py-spy records the gateway and the
    messages service (not in the results)."""
    spy = str(Path(sys.executable).parent / "py-spy")
    for what in ("pages", "sync"):
        procs = []
        for name, proc in (("gateway", cluster.gateways[0]), ("messages", cluster.messages[0])):
            out = Path(args.profile) / f"{what}-{name}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            cmd = [spy, "record", "-p", str(proc.pid), "-d", str(int(args.duration)), "-r", "500"]
            cmd += ["-f", "raw", "-o", str(out), "--nonblocking"]
            procs.append((name, out, await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL)))
        if what == "pages":
            tokens = await fresh_tokens(cluster.gateway_url, users[1:])
            await rest_pages(cluster.gateway_url, conv, tokens, first, last, args, seed=9)
        else:
            await measure_sync(cluster.gateway_url, cluster.ws_urls[0], s, args.syncs, args.duration)
        for name, out, p in procs:
            p.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.wait(), 30)
            if out.exists():
                own, incl = summarize_profile(out, top=20)
                print(f"\nprofile of {name} during {what}, self time (% of samples):")
                for fn, share in own:
                    print(f"  {share:5.1f}  {fn}")
                print(f"profile of {name} during {what}, inclusive time of project functions:")
                for fn, share in incl:
                    print(f"  {share:5.1f}  {fn}")


def print_medians(rows: list[dict[str, Any]], load: dict[str, Any], s: SyncSetup, args: argparse.Namespace) -> None:
    def med(path: str) -> float:
        vals = []
        for r in rows:
            v: Any = r
            for k in path.split("."):
                v = v[k]
            vals.append(float(v))
        return round(statistics.median(vals), 3)

    out = {
        "events": load["events"],
        "runs": len(rows),
        "readers": args.readers,
        "rest_page_p50_ms": med("pages.ms.p50"),
        "rest_page_p99_ms": med("pages.ms.p99"),
        "rest_page_max_ms": med("pages.ms.max"),
        "rest_newest_p99_ms": med("pages.newest_ms.p99"),
        "rest_one_reader_p50_ms": med("pages.one_reader_ms.p50"),
        "rest_one_reader_p99_ms": med("pages.one_reader_ms.p99"),
        "pages_per_s": med("pages.pages_per_s"),
        "page_errors": sum(r["pages"]["errors"] for r in rows),
        "sql_p50_ms": med("store.sql_ms.p50"),
        "sql_p99_ms": med("store.sql_ms.p99"),
        "sql_max_ms": med("store.sql_ms.max"),
        "server_exec_p50_ms": med("store.server_exec_ms.p50"),
        "server_exec_p99_ms": med("store.server_exec_ms.p99"),
        "store_history_p50_ms": med("store.store_history_ms.p50"),
        "store_history_p99_ms": med("store.store_history_ms.p99"),
        "handler_p50_ms": med("store.handler_ms.p50"),
        "handler_p99_ms": med("store.handler_ms.p99"),
        "sync_convs": len(s.positions),
        "sync_events_per_conv": s.events_per_conv,
        "sync_p50_ms": med("sync.sync_ms.p50"),
        "sync_p99_ms": med("sync.sync_ms.p99"),
        "sync_max_ms": med("sync.sync_ms.max"),
        "sync_bad": sum(r["sync"]["bad"] for r in rows),
        "sync_client_cpu_p50_ms": med("sync.client_cpu_ms.p50"),
        "cpu_ms_per_sync": {k: med(f"sync.cpu_ms_per_sync.{k}") for k in rows[0]["sync"]["cpu_ms_per_sync"]},
        "cpu_us_per_page": {k: med(f"pages.cpu_us_per_page.{k}") for k in rows[0]["pages"]["cpu_us_per_page"]},
    }
    print("\nMEDIANS " + json.dumps(out), flush=True)


def watchdog(minutes: float) -> None:
    def fire() -> None:
        print(f"history.py: --max-minutes {minutes} passed; stopping", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Timer(minutes * 60, fire)
    t.daemon = True
    t.start()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=250_000, help="rows per COPY transaction")
    ap.add_argument("--load-timeout", type=float, default=3600)
    ap.add_argument("--settle-timeout", type=float, default=600, help="after the load: checkpoint and writeback")
    ap.add_argument("--other-convs", type=int, default=50)
    ap.add_argument("--other-per-event", type=int, default=0, help="interleaved events of other conversations")
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--pages", type=int, default=5000, help="measured pages per run")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--newest-every", type=int, default=10)
    ap.add_argument("--duration", type=float, default=60, help="at most this many seconds per phase")
    ap.add_argument("--sql-samples", type=int, default=2000)
    ap.add_argument("--explain-samples", type=int, default=300)
    ap.add_argument("--sync-convs", type=int, default=100)
    ap.add_argument("--sync-events", type=int, default=20)
    ap.add_argument("--syncs", type=int, default=200, help="sync samples per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="service setting (repeat)")
    ap.add_argument("--pg-setting", action="append", default=[], metavar="KEY=VALUE", help="postgresql.conf (repeat)")
    ap.add_argument("--profile", default=None, metavar="DIR", help="py-spy the gateway and messages in one extra run")
    ap.add_argument("--max-minutes", type=float, default=120)
    args = ap.parse_args()
    if not (1_000 <= args.events <= 50_000_000 and 1 <= args.readers <= 64 and 1 <= args.repeat <= 10):
        sys.exit("--events 1000..50M, --readers 1..64, --repeat 1..10")
    if not (1 <= args.sync_convs <= 1000 and 1 <= args.sync_events <= 500 and args.pages <= 1_000_000):
        sys.exit("--sync-convs 1..1000, --sync-events 1..500, --pages <= 1M")
    watchdog(args.max_minutes)
    with stack(args) as (cluster, pg, dsn):
        uvloop.run(run(args, cluster, pg, dsn))


if __name__ == "__main__":
    main()
