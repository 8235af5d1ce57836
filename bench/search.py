"""Search benchmark (search issue): indexing rate, query latency and index size of both
backends over a generated corpus, and event → searchable through a whole running system.

1. ``--part index``: ``--messages`` generated messages (seeded: chat text from a Zipf-weighted
   vocabulary — stop words, common words, names, a long tail of jargon —, ~6 % CJK sentences,
   ~3 % with file attachments such as ``report-2024.pdf``) over ``--convs`` conversations are
   indexed through the backend itself (``FtsBackend`` / ``OpenSearchBackend`` on a real
   OpenSearch 2.19.1), in batches of 2,000 (the service's batch size; OpenSearch with
   ``--os-inflight`` bulk requests in flight, SQLite one at a time: it has one connection).
   Reported: messages/s (wall time, OpenSearch's final ``_refresh`` included), the index
   size on disk (SQLite: the file and its ``-wal``; OpenSearch: ``_stats/store`` of the
   index), then ``--repeat`` times: ``--queries`` searches, ``--concurrency`` in flight, each
   as one of 10 users who are each in ``--member-of`` random conversations (their membership
   filter), limit 20 — one word (45 %), two words (30 %), CJK words of 2 and 3-4 characters
   (12 %), file names (13 %) —: p50/p99 overall and per kind.
2. ``--part e2e``: NATS, auth, messages, presence, search and one gateway (SQLite; search on
   FTS5 or on OpenSearch through ``SEARCH_BACKEND``, its JVM warmed on a throwaway index
   first), chat at ``--rate`` msg/s for ``--warmup`` + ``--e2e-seconds`` from ``--senders``
   WebSocket connections (the gateway's send admission off unless ``--admission``: the load
   must really be ``--rate``); ``--samples`` of the messages after the warm-up carry a unique
   token. Latency = the send's ``ack`` → the first ``GET /v1/search`` that finds the token
   (every pending token is asked every 50 ms, up to 32 tokens a request: a message matches
   when any term does).

    .venv/bin/python bench/search.py --part index --backend both --messages 1000000 --repeat 3
    .venv/bin/python bench/search.py --part e2e --backend both

Bounded by its counts and by time caps on every loop; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from chat_devtools.cluster import Cluster, sqlite_urls
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.opensearch import OPENSEARCH_VERSION, OpenSearchServer, default_home, is_installed
from chat_search.backends import Doc, SearchBackend
from chat_search.backends.fts import FtsBackend
from chat_search.backends.opensearch import OpenSearchBackend

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from overload import NO_ADMISSION  # noqa: E402
from run import BENCH_ENV, cpu_snapshot  # noqa: E402

PASSWORD = "bench-password-1"
BATCH = 2000  # the search service's batch (SEARCH_BATCH)
INDEX_PREFIX = "bench-search"
INDEX_CAP_S = 3600.0  # no indexing run may take longer
QUERY_CAP_S = 600.0  # nor one query measurement
N_USERS = 10

# -- the corpus ----------------------------------------------------------------------------
STOP = (
    "the i you to a and it is that in of for on we me my this be can just so have do not are "
    "with at but if was what will its all they up get out about there how now your im no one "
    "know ok yes go like dont think see let from as when then by or well here"
).split()
COMMON = (
    "meeting today tomorrow time work team project call please thanks thank good great new need "
    "check update issue fix done sure look send file doc review week morning afternoon tonight "
    "later lunch coffee office home back soon yesterday release deploy build test server client "
    "customer sales report budget plan design code bug feature branch merge change question "
    "answer idea problem help meet room agenda notes slides deadline friday monday tuesday "
    "wednesday thursday weekend holiday trip flight hotel dinner party birthday happy sorry "
    "late early minutes hour day month year quarter numbers data database backup password login "
    "account email phone message link video photo picture screen share start stop wait ready "
    "working broken slow fast down running logs error alert incident outage postmortem ticket "
    "sprint standup demo launch roadmap milestone estimate priority blocker approved contract "
    "invoice payment price offer order delivery shipping warehouse stock inventory marketing "
    "campaign website blog post article draft final version copy print sign signed legal "
    "policy security audit compliance training onboarding hiring interview candidate offer "
    "salary vacation sick leave remote hybrid desk laptop monitor keyboard printer wifi vpn "
    "access permission admin settings config deployment cluster node container image kubernetes "
    "docker terraform staging production rollback hotfix patch upgrade migration schema query "
    "index search cache latency throughput memory cpu disk network traffic users growth revenue "
    "churn metrics dashboard chart graph spreadsheet analysis forecast target goal results "
    "feedback survey interviewed research prototype mockup wireframe figma colors font logo brand"
).split()
NAMES = (
    "alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert sybil "
    "trent victor walter yolanda zoe liam noah emma ava sophia mia lucas mateo hugo leo chloe "
    "camille manon jules louis arthur ines lea sarah david daniel anna marie paul thomas julia "
    "lena felix max jonas elias nora ella maja oskar tobias priya arjun rohan ananya kenji yuki "
    "haruto sakura wei chen li wang zhang fatima omar yusuf amir layla berlin paris london tokyo "
    "madrid lisbon warsaw prague vienna zurich dublin oslo boston austin denver chicago seattle"
).split()
CJK_WORDS = (
    "我们 明天 北京 开会 项目 报告 今天 问题 客户 服务器 部署 测试 上线 周末 下午 会议室 需要 已经 "
    "完成 文件 发给 你 看一下 谢谢 没问题 好的 上海 数据库 预算 合同 审核 版本 发布 晚上 吃饭 "
    "明日 会議 資料 確認 お願いします 東京 打ち合わせ よろしく ありがとうございます 送ります 大阪 "
    "予定 来週 担当 修正 対応 報告書 回議室"
).split()
FILE_STEMS = (
    "report budget invoice screenshot slides contract notes design roadmap backup data photo "
    "minutes specs summary proposal agenda timeline export receipt scan diagram"
).split()
FILE_EXTS = "pdf png jpg xlsx docx zip csv pptx txt mp4 key md".split()
MIMES = {"pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg", "mp4": "video/mp4"}
_SYLLABLES = "ka ri to mo na shi lu ve ro dan tek zor vi pal mer qui bex gal nor sti fen ox ul tra cy".split()


def hexid(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


class Vocabulary:
    """Words ranked by frequency (stop words, common words, names, a synthetic long tail of
    jargon and codenames) with Zipf weights (s = 1) for text; queries draw content words."""

    def __init__(self, rng: random.Random, tail: int = 6000) -> None:
        seen: set[str] = set()
        words: list[str] = []
        for w in (*STOP, *COMMON, *NAMES):
            if w not in seen:
                seen.add(w)
                words.append(w)
        while len(words) < len(STOP) + len(COMMON) + len(NAMES) + tail:
            w = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
            if w not in seen:
                seen.add(w)
                words.append(w)
        self.words = words
        acc, self.cum = 0.0, []
        for r in range(1, len(words) + 1):
            acc += 1.0 / r
            self.cum.append(acc)
        # what people search for: content words up to rank 2,000 (not stop words)
        self.query_words = [w for w in words[:2000] if w not in set(STOP)]

    def text(self, rng: random.Random, n: int) -> str:
        return " ".join(rng.choices(self.words, cum_weights=self.cum, k=n))


def cjk_sentence(rng: random.Random) -> str:
    return "".join(rng.choices(CJK_WORDS, k=rng.randint(3, 7))) + rng.choice(
        "\u3002\uff0c\uff01\uff1f"
    )  # CJK full stop, comma, !, ?


def file_name(rng: random.Random) -> str:
    ext = rng.choice(FILE_EXTS)
    r = rng.random()
    if r < 0.2:
        return f"IMG_{rng.randint(1000, 9999)}.{ext}"
    if r < 0.35:
        day = f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return f"{rng.choice(FILE_STEMS)}-{day}.{ext}"
    return f"{rng.choice(FILE_STEMS)}-{rng.randint(2019, 2025)}.{ext}"


def generate(n: int, convs: list[str], vocab: Vocabulary, seed: int) -> list[Doc]:
    """``n`` messages spread (uniformly at random) over ``convs``, a year of chat."""
    rng = random.Random(seed)
    senders = [hexid(rng) for _ in range(max(50, len(convs) * 4))]
    seqs = dict.fromkeys(convs, 0)
    t0 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    step = 365 * 86400 / max(n, 1)
    docs: list[Doc] = []
    for i in range(n):
        conv = rng.choice(convs)
        seqs[conv] += 1
        r = rng.random()
        if r < 0.06:
            body = cjk_sentence(rng)
        elif r < 0.08:  # mixed: an English message quoting a CJK phrase
            body = vocab.text(rng, rng.randint(3, 10)) + " " + cjk_sentence(rng)
        else:
            body = vocab.text(rng, max(1, min(60, int(rng.lognormvariate(2.1, 0.6)))))
        names = [file_name(rng) for _ in range(1 if rng.random() < 0.85 else 2)] if rng.random() < 0.03 else []
        ms = int((t0 + i * step) * 1000) + rng.randint(0, 999)
        ts = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        sender = rng.choice(senders)
        event: dict[str, Any] = {
            "conv": conv,
            "seq": seqs[conv],
            "kind": "message",
            "sender": sender,
            "ts": ts,
            "client_msg_id": f"{rng.getrandbits(64):016x}",
            "body": body,
        }
        if names:
            event["attachments"] = [
                {
                    "media_id": f"{rng.getrandbits(96):024x}",
                    "mime": MIMES.get(name.rsplit(".", 1)[1], "application/octet-stream"),
                    "size": rng.randint(10_000, 5_000_000),
                    "name": name,
                }
                for name in names
            ]
        docs.append(Doc(conv, seqs[conv], sender, ts, body, names, event))
    return docs


def make_queries(rng: random.Random, n: int, vocab: Vocabulary) -> list[tuple[str, str]]:
    """``(kind, text)``: one word 45 %, two words 30 %, CJK 12 %, file names 13 %."""
    out: list[tuple[str, str]] = []
    cjk2 = [w for w in CJK_WORDS if len(w) == 2]
    cjk3 = [w for w in CJK_WORDS if len(w) >= 3]
    for _ in range(n):
        r = rng.random()
        if r < 0.45:
            out.append(("word", rng.choice(vocab.query_words)))
        elif r < 0.75:
            out.append(("two_words", " ".join(rng.sample(vocab.query_words, 2))))
        elif r < 0.81:
            out.append(("cjk_2", rng.choice(cjk2)))
        elif r < 0.87:
            out.append(("cjk_3plus", rng.choice(cjk3)))
        else:
            out.append(("file", file_name(rng)))
    return out


# -- measurements --------------------------------------------------------------------------
def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


class BenchOpenSearch(OpenSearchServer):
    """The test node, but with the JVM's full JIT (the test flag ``TieredStopAtLevel=1``
    keeps C1 only: quick to start, slower at a sustained load) unless ``c1_only``."""

    def __init__(self, *a: Any, c1_only: bool = False, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.c1_only = c1_only

    def command(self) -> list[str]:
        cmd = super().command()
        return cmd if self.c1_only else [x for x in cmd if x != "-XX:TieredStopAtLevel=1"]


def opensearch_home() -> Path:
    """This checkout's ``.cache/opensearch-…`` (``make test`` installs it), else the default."""
    here = HERE.parent / ".cache" / f"opensearch-{OPENSEARCH_VERSION}"
    return here if is_installed(here) else default_home()


def start_opensearch(args: argparse.Namespace, data_dir: Path) -> OpenSearchServer:
    server = BenchOpenSearch(data_dir, home=opensearch_home(), heap=args.os_heap, c1_only=args.os_c1_only)
    return server.start()


async def index_all(backend: SearchBackend, docs: list[Doc], inflight: int) -> float:
    """Seconds to upsert ``docs`` in batches of BATCH, ``inflight`` at a time."""
    batches = [docs[i : i + BATCH] for i in range(0, len(docs), BATCH)]
    started = time.perf_counter()
    next_batch = 0

    async def worker() -> None:
        nonlocal next_batch
        while next_batch < len(batches):
            b = batches[next_batch]
            next_batch += 1
            await backend.upsert(b)

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(inflight))), INDEX_CAP_S)
    return time.perf_counter() - started


async def measure_queries(
    backend: SearchBackend, queries: list[tuple[str, str]], users: list[list[str]], concurrency: int
) -> dict[str, Any]:
    """``queries`` with ``concurrency`` in flight, query i as user i % len(users); limit 20."""
    lat: dict[str, list[float]] = {}
    hits: list[int] = []
    errors: dict[str, int] = {}
    nxt = 0
    deadline = time.monotonic() + QUERY_CAP_S

    async def worker() -> None:
        nonlocal nxt
        while nxt < len(queries) and time.monotonic() < deadline:
            i = nxt
            nxt += 1
            kind, q = queries[i]
            t0 = time.perf_counter()
            try:
                page = await asyncio.wait_for(backend.search(q, users[i % len(users)], 20, None), 30)
            except Exception as e:  # counted, and the run goes on
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                continue
            lat.setdefault(kind, []).append(time.perf_counter() - t0)
            hits.append(len(page.hits))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    every = [x for xs in lat.values() for x in xs]
    return {
        "queries": len(every),
        "qps": round(len(every) / wall, 1),
        "p50_ms": round(pct(every, 0.5) * 1000, 2),
        "p99_ms": round(pct(every, 0.99) * 1000, 2),
        "max_ms": round(max(every, default=float("nan")) * 1000, 2),
        "by_kind": {
            k: {"n": len(v), "p50_ms": round(pct(v, 0.5) * 1000, 1), "p99_ms": round(pct(v, 0.99) * 1000, 1)}
            for k, v in sorted(lat.items())
        },
        "avg_hits": round(statistics.mean(hits), 1) if hits else 0,
        "empty_pages": sum(1 for h in hits if h == 0),
        "errors": errors,
        "loadavg_1m": round(os.getloadavg()[0], 1),  # others' work on the box shows here
    }


async def index_part(
    args: argparse.Namespace, name: str, docs: list[Doc], convs: list[str], vocab: Vocabulary, tmp: Path
) -> dict[str, Any]:
    rng = random.Random(args.seed + 1)
    users = [rng.sample(convs, min(args.member_of, len(convs))) for _ in range(N_USERS)]
    server: OpenSearchServer | None = None
    backend: SearchBackend
    if name == "fts":
        path = tmp / "fts" / "search.db"
        path.parent.mkdir(parents=True)
        backend = FtsBackend(path, readers=args.fts_readers)
        inflight = 1
    else:
        server = start_opensearch(args, tmp / "opensearch")
        backend = OpenSearchBackend(server.url, index_prefix=INDEX_PREFIX)
        inflight = args.os_inflight
    try:
        await backend.start()
        secs = await index_all(backend, docs, inflight)
        if server is not None:
            async with httpx.AsyncClient(base_url=server.url, timeout=600) as http:
                t0 = time.perf_counter()
                (await http.post(f"/{INDEX_PREFIX}/_refresh")).raise_for_status()
                secs += time.perf_counter() - t0
                stats = (await http.get(f"/{INDEX_PREFIX}/_stats/store,docs")).json()["_all"]["primaries"]
                size = stats["store"]["size_in_bytes"]
                count = stats["docs"]["count"]
                rss = server.rss_bytes() or 0
                segments = len((await http.get(f"/_cat/segments/{INDEX_PREFIX}?h=segment")).text.split())
        else:
            db = Path(path)
            size = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
            count = len(docs)
            rss = segments = 0
        out: dict[str, Any] = {
            "backend": name,
            "messages": len(docs),
            "indexed_docs": count,
            "index_s": round(secs, 1),
            "index_per_s": round(len(docs) / secs),
            "inflight": inflight,
            "size_mib": round(size / (1 << 20), 1),
            "bytes_per_message": round(size / max(1, len(docs))),
            "member_of": len(users[0]),
            "loadavg_1m": round(os.getloadavg()[0], 1),
            "convs": len(convs),
        }
        if server is not None:
            out["opensearch_rss_mib"] = round(rss / (1 << 20))
            out["segments"] = segments
        print(json.dumps(out), flush=True)
        await measure_queries(
            backend, make_queries(random.Random(args.seed + 99), 300, vocab), users, 10
        )  # warm (JIT, caches)
        runs = []
        for r in range(args.repeat):
            queries = make_queries(random.Random(args.seed + 100 + r), args.queries, vocab)
            q = await measure_queries(backend, queries, users, args.concurrency)
            runs.append(q)
            print(json.dumps({"backend": name, "query_run": r + 1, "concurrency": args.concurrency, **q}), flush=True)
        out["query_runs"] = runs
        if server is not None:  # stop-the-world time over the whole run (Serial GC)
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                node = next(iter((await http.get("/_nodes/stats/jvm")).json()["nodes"].values()))
            gc = {
                k: {"count": v["collection_count"], "ms": v["collection_time_in_millis"]}
                for k, v in node["jvm"]["gc"]["collectors"].items()
            }
            print(
                json.dumps(
                    {"backend": name, "jvm_gc": gc, "heap_max_mib": node["jvm"]["mem"]["heap_max_in_bytes"] >> 20}
                ),
                flush=True,
            )
        return out
    finally:
        await backend.close()
        if server is not None:
            server.close()


# -- e2e -----------------------------------------------------------------------------------
async def login(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    (await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})).raise_for_status()
    r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    return {"id": r.json()["user"]["id"], "token": r.json()["access_token"]}


async def e2e_run(c: Cluster, args: argparse.Namespace, vocab: Vocabulary, os_pid: int) -> dict[str, Any]:
    rng = random.Random(args.seed + 7)
    tag = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=c.gateway_url, timeout=30) as http:
        searcher = await login(http, f"finder{tag}")
        senders = [await login(http, f"sender{tag}{i}") for i in range(args.senders)]
        convs: list[list[str]] = []
        for s in senders:  # each sender's groups: the sender and the searcher
            mine = []
            for _ in range(args.e2e_convs):
                r = await http.post(
                    "/v1/conversations",
                    headers={"Authorization": f"Bearer {s['token']}"},
                    json={"kind": "group", "name": f"g{uuid.uuid4().hex[:6]}", "members": [searcher["id"]]},
                )
                r.raise_for_status()
                mine.append(r.json()["id"])
            convs.append(mine)
        per_sender = args.rate / args.senders
        n_warm = int(per_sender * args.warmup)  # per sender, before the first probe
        n_each = n_warm + int(per_sender * args.e2e_seconds)
        every = max(1, (n_each - n_warm) * args.senders // args.samples)
        acked_at: dict[str, float] = {}
        ack_lat: list[float] = []
        errors: dict[str, int] = {}
        probes: dict[str, str] = {}  # token -> client_msg_id
        found_at: dict[str, float] = {}
        sent_at: dict[str, float] = {}
        bodies = [vocab.text(rng, max(1, min(40, int(rng.lognormvariate(2.1, 0.6))))) for _ in range(4096)]
        sending_done = asyncio.Event()
        search_lat: list[float] = []
        search_errors: dict[int, int] = {}

        async def sender(i: int, ws: Any) -> None:
            interval = 1.0 / per_sender
            start = time.perf_counter() + (i / args.senders) * interval
            for n in range(n_each):
                due = start + n * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                k = i + n * args.senders  # global index
                cmid = f"{tag}-{i}-{n}"
                body = bodies[k % len(bodies)]
                if n >= n_warm and k % every == 0 and len(probes) < args.samples:
                    token = f"probe{tag}x{k}"
                    probes[token] = cmid
                    body = f"{body} {token}"
                sent_at[cmid] = due
                frame = {"type": "send", "conv": convs[i][n % len(convs[i])], "client_msg_id": cmid, "body": body}
                await ws.send(orjson.dumps(frame).decode())

        async def reader(ws: Any, expect: int) -> None:
            got = 0
            with_deadline = time.perf_counter() + args.warmup + args.e2e_seconds + 60
            while got < expect and time.perf_counter() < with_deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(decode=False), 5)
                except TimeoutError:
                    if sending_done.is_set():
                        return
                    continue
                now = time.perf_counter()
                f = orjson.loads(raw)
                if f.get("type") == "ack":
                    got += 1
                    acked_at[f["client_msg_id"]] = now
                    ack_lat.append(now - sent_at[f["client_msg_id"]])
                elif f.get("type") == "error" and f.get("client_msg_id") in sent_at:
                    got += 1
                    errors[f.get("code", "?")] = errors.get(f.get("code", "?"), 0) + 1

        async def poller() -> None:
            headers = {"Authorization": f"Bearer {searcher['token']}"}
            stop_at = time.perf_counter() + args.warmup + args.e2e_seconds + args.e2e_timeout
            while time.perf_counter() < stop_at:
                tick = time.perf_counter()
                pending = [t for t, cmid in probes.items() if t not in found_at and cmid in sent_at]
                if sending_done.is_set() and all(probes[t] not in acked_at for t in pending):
                    return  # every acked probe found (a refused one is never searchable)

                async def ask(chunk: list[str]) -> None:
                    t0 = time.perf_counter()
                    r = await http.get("/v1/search", params={"q": " ".join(chunk), "limit": 100}, headers=headers)
                    now = time.perf_counter()
                    if r.status_code != 200:
                        search_errors[r.status_code] = search_errors.get(r.status_code, 0) + 1
                        return
                    search_lat.append(now - t0)
                    want = set(chunk)
                    for h in r.json()["hits"]:
                        for w in str(h["event"].get("body") or "").split():
                            if w in want and w not in found_at:
                                found_at[w] = now

                await asyncio.gather(*(ask(pending[j : j + 32]) for j in range(0, len(pending), 32)))
                await asyncio.sleep(max(0.0, tick + 0.05 - time.perf_counter()))

        groups = {"search": c.search.pid if c.search else 0, "messages": c.messages[0].pid or 0}
        groups |= {"gateway": c.gateways[0].pid or 0, "nats": c.nats.proc.pid if c.nats and c.nats.proc else 0}
        if os_pid:
            groups["opensearch"] = os_pid
        cpu0 = cpu_snapshot(groups)
        t_start = time.perf_counter()
        ws_url = c.ws_urls[0]
        wss = [
            await websockets.connect(ws_url, max_size=None, max_queue=None, compression=None)
            for _ in range(args.senders)
        ]
        try:
            for ws, s in zip(wss, senders, strict=True):
                await ws.send(json.dumps({"type": "auth", "token": s["token"]}))
                assert json.loads(await ws.recv())["type"] == "auth_ok"
            readers = [asyncio.create_task(reader(ws, n_each)) for ws in wss]
            poll = asyncio.create_task(poller())
            t_start = time.perf_counter()
            await asyncio.gather(*(sender(i, ws) for i, ws in enumerate(wss)))
            send_s = time.perf_counter() - t_start
            await asyncio.gather(*readers)
            sending_done.set()
            await poll
        finally:
            for ws in wss:
                await ws.close()
        wall = time.perf_counter() - t_start
        cpu1 = cpu_snapshot(groups)
        lag = index_lag(c.search.metrics_url + "/metrics") if c.search else {}

    lat = [found_at[t] - acked_at[cmid] for t, cmid in probes.items() if t in found_at and cmid in acked_at]
    return {
        "rate_offered": args.rate,
        "senders": args.senders,
        "seconds": args.e2e_seconds,
        "warmup_s": args.warmup,
        "sent": len(sent_at),
        "acked": len(acked_at),
        "send_s": round(send_s, 2),
        "acked_per_s": round(len(acked_at) / send_s, 1),
        "ack_p50_ms": round(pct(ack_lat, 0.5) * 1000, 1),
        "ack_p99_ms": round(pct(ack_lat, 0.99) * 1000, 1),
        "errors": errors,
        "probes": len(probes),
        "probes_acked": sum(1 for cmid in probes.values() if cmid in acked_at),
        "probes_found": len(lat),
        "searchable_p50_ms": round(pct(lat, 0.5) * 1000, 1),
        "searchable_p99_ms": round(pct(lat, 0.99) * 1000, 1),
        "searchable_max_ms": round(max(lat, default=float("nan")) * 1000, 1),
        "poll_search_p50_ms": round(pct(search_lat, 0.5) * 1000, 1),
        "poll_search_p99_ms": round(pct(search_lat, 0.99) * 1000, 1),
        "poll_searches": len(search_lat),
        "poll_search_errors": search_errors,
        "indexer_lag": lag,
        "cpu_pct": {k: round(100 * (cpu1[k] - cpu0[k]) / wall) for k in groups},
        "loadavg_1m": round(os.getloadavg()[0], 1),
    }


async def warm_jvm(server: OpenSearchServer, vocab: Vocabulary) -> None:
    """A node that has run for a while: 20,000 documents and 300 searches on an index of
    its own (then deleted), so that the JIT has compiled the hot paths before the run."""
    backend = OpenSearchBackend(server.url, index_prefix="jvm-warmup")
    convs = [f"warm{i}" for i in range(200)]
    try:
        await backend.start()
        await index_all(backend, generate(20_000, convs, vocab, 1), 3)
        await measure_queries(backend, make_queries(random.Random(1), 300, vocab), [convs[:100]], 10)
    finally:
        await backend.close()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        await http.delete("/jvm-warmup-000001")
        await http.delete("/_index_template/jvm-warmup-template")


def index_lag(url: str) -> dict[str, Any]:
    """The search service's event time → indexed histogram (all events since it started):
    count, mean and the share within 0.5 / 1 / 2 s."""
    text = httpx.get(url, timeout=10).text
    buckets: dict[str, float] = {}
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("chat_search_index_lag_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("chat_search_index_lag_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("chat_search_index_lag_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    share = {f"within_{le}s": round(buckets.get(le, 0) / count, 4) if count else None for le in ("0.5", "1.0", "2.0")}
    return {"events": int(count), "mean_ms": round(1000 * total / count, 1) if count else None, **share}


def refresh_stats(url: str) -> dict[str, Any]:
    """The chat index's refreshes over the run (how often a write could become searchable)
    and its indexing time, from ``_stats``."""
    st = httpx.get(f"{url}/{INDEX_PREFIX}/_stats/refresh,indexing", timeout=10).json()["_all"]["primaries"]
    ref, idx = st["refresh"], st["indexing"]
    n = max(1, ref["total"])
    return {
        "refreshes": ref["total"],
        "refresh_mean_ms": round(ref["total_time_in_millis"] / n, 1),
        "indexed": idx["index_total"],
        "index_ms_per_doc": round(idx["index_time_in_millis"] / max(1, idx["index_total"]), 3),
    }


def e2e_part(args: argparse.Namespace, name: str, vocab: Vocabulary) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chat-bench-search-") as d:
        tmp = Path(d)
        nats = NatsServer(tmp / "nats", accounts=[ChatAccount.generate()]).start()
        server = None
        c = None
        try:
            extra = [] if args.admission else NO_ADMISSION
            env = {**BENCH_ENV, **dict(e.split("=", 1) for e in [*extra, *args.env])}
            os_pid = 0
            if name == "opensearch":
                server = start_opensearch(args, tmp / "opensearch")
                os_pid = server.pid or 0
                asyncio.run(warm_jvm(server, vocab))
                env |= {
                    "SEARCH_BACKEND": "opensearch",
                    "SEARCH_OPENSEARCH_URL": server.url,
                    "SEARCH_INDEX_PREFIX": INDEX_PREFIX,
                }
            c = Cluster(
                nats.url,
                nats=nats,
                database_urls=sqlite_urls(tmp / "db"),
                data_dir=tmp,
                log_dir=tmp / "logs",
                gateways=1,
                log_level="WARNING",
                env=env,
                media=False,
            ).start()
            try:
                import uvloop

                res = uvloop.run(e2e_run(c, args, vocab, os_pid))
            except ImportError:
                res = asyncio.run(e2e_run(c, args, vocab, os_pid))
            res = {"backend": name, **res}
            if server is not None:
                res["opensearch_refresh"] = refresh_stats(server.url)
            print(json.dumps(res), flush=True)
            return res
        finally:
            if c is not None:
                c.stop()
            if server is not None:
                server.close()
            nats.stop()


# -- main ----------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["index", "e2e", "all"], default="all")
    ap.add_argument("--backend", choices=["fts", "opensearch", "both"], default="both")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--convs", type=int, default=5_000)
    ap.add_argument("--member-of", type=int, default=1_000, help="conversations of each searching user")
    ap.add_argument("--queries", type=int, default=2_000, help="per query measurement")
    ap.add_argument("--concurrency", type=int, default=10, help="queries in flight")
    ap.add_argument("--repeat", type=int, default=3, help="query measurements per backend")
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--os-inflight", type=int, default=3, help="OpenSearch bulk requests in flight")
    ap.add_argument("--os-heap", default="512m", help="OpenSearch -Xmx")
    ap.add_argument("--os-c1-only", action="store_true", help="OpenSearch with the tests' C1-only JIT")
    ap.add_argument(
        "--fts-readers", type=int, default=3, help="FTS: read-only connections for searches (0: the writer's)"
    )
    ap.add_argument("--rate", type=float, default=1000.0, help="e2e: chat messages/s")
    ap.add_argument("--e2e-seconds", type=float, default=20.0)
    ap.add_argument("--senders", type=int, default=4, help="e2e: WebSocket connections sending")
    ap.add_argument("--e2e-convs", type=int, default=5, help="e2e: groups per sender")
    ap.add_argument("--samples", type=int, default=200, help="e2e: messages with a unique token")
    ap.add_argument("--warmup", type=float, default=3.0, help="e2e: seconds of chat before the first probe")
    ap.add_argument(
        "--admission", action="store_true", help="e2e: keep the gateway's send admission (default: off, all admitted)"
    )
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="e2e: extra service setting")
    ap.add_argument("--e2e-timeout", type=float, default=30.0, help="e2e: give up on a token after sending + this")
    args = ap.parse_args()
    args.e2e_seconds = min(args.e2e_seconds, 600)
    args.warmup = min(args.warmup, 60)
    backends = ["fts", "opensearch"] if args.backend == "both" else [args.backend]
    vocab = Vocabulary(random.Random(args.seed))
    index_results: list[dict[str, Any]] = []
    e2e_results: list[dict[str, Any]] = []
    if args.part in ("index", "all"):
        t0 = time.perf_counter()
        crng = random.Random(args.seed + 2)
        convs = [hexid(crng) for _ in range(args.convs)]
        docs = generate(args.messages, convs, vocab, args.seed + 3)
        chars = sum(len(d.body) for d in docs)
        print(
            json.dumps(
                {
                    "generated": len(docs),
                    "seconds": round(time.perf_counter() - t0, 1),
                    "avg_body_chars": round(chars / max(1, len(docs)), 1),
                    "with_attachments": sum(1 for d in docs if d.attachments),
                    "vocabulary": len(vocab.words),
                }
            ),
            flush=True,
        )
        for name in backends:
            with tempfile.TemporaryDirectory(prefix="chat-bench-search-") as d:
                index_results.append(asyncio.run(index_part(args, name, docs, convs, vocab, Path(d))))
        del docs
    if args.part in ("e2e", "all"):
        for name in backends:
            e2e_results.append(e2e_part(args, name, vocab))

    if index_results:
        print(
            f"\nindex part: {args.messages:,} messages, {args.convs:,} conversations, user in {args.member_of:,}, "
            f"{args.concurrency} concurrent, medians of {args.repeat} query runs of {args.queries}:"
        )
        print(f"  {'backend':11} {'msgs/s':>8} {'size MiB':>9} {'p50 ms':>8} {'p99 ms':>8}  p99 by kind (ms)")
        for r in index_results:
            runs = r["query_runs"]
            p50 = statistics.median(q["p50_ms"] for q in runs)
            p99 = statistics.median(q["p99_ms"] for q in runs)
            kinds = sorted({k for q in runs for k in q["by_kind"]})
            by = {k: statistics.median(q["by_kind"][k]["p99_ms"] for q in runs if k in q["by_kind"]) for k in kinds}
            print(
                f"  {r['backend']:11} {r['index_per_s']:8,} {r['size_mib']:9,.1f} {p50:8.1f} {p99:8.1f}  "
                + ", ".join(f"{k} {v:.0f}" for k, v in by.items())
            )
    if e2e_results:
        print(f"\ne2e part: chat at {args.rate:.0f} msg/s for {args.e2e_seconds:.0f} s, {args.samples} probes:")
        for r in e2e_results:
            print(
                f"  {r['backend']:11} acked/s {r['acked_per_s']:7.1f}  ack p99 {r['ack_p99_ms']:7.1f} ms  "
                f"event→searchable p50 {r['searchable_p50_ms']:7.1f} p99 {r['searchable_p99_ms']:7.1f} ms  "
                f"found {r['probes_found']}/{r['probes']}"
            )


if __name__ == "__main__":
    main()
