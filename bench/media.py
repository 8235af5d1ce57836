"""Media benchmark (issue 12): sanitized uploads beside a bare sanitize loop, chat latency
while uploads run, and the media service's memory through the attack corpus — in one run.

1. reference: the bare sanitize loop (``chat_media.sanitize.sanitize``, Pillow) on the same
   ~1 MiB JPEG in ``--concurrency`` threads of this process: sanitizes/s;
2. the service: the same JPEG uploaded through a gateway (multipart → media service →
   sanitize → S3 on a real SeaweedFS), ``--concurrency`` uploads in flight: uploads/s, p50/p99
   latency (and once more at concurrency 8 for the p99);
3. chat: send→receive p99 between two WebSocket users at ``--chat-rate`` msg/s, unloaded, then
   while uploads run at half the reference rate;
4. memory: the media service's RSS sampled every 50 ms while the attack corpus (the pixel
   bombs, a 2,000-frame GIF, a 7,000 x 7,000 real image, …) is uploaded: peak minus idle,
   against 2.5 x the bytes of one image at the pixel cap (RGB, 3 bytes a pixel).

    .venv/bin/python bench/media.py --uploads 60 --repeat 3

Bounded by its counts and durations; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import websockets
from chat_devtools.cluster import Cluster
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.s3server import S3Server
from chat_media import sanitize
from PIL import Image

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
from helpers import media as corpus  # noqa: E402
from run import BENCH_ENV, rss_kib, sqlite_urls  # noqa: E402

PASSWORD = "bench-password-1"
MAX_PIXELS = 50_000_000


def photo_jpeg(target: int = 1 << 20) -> bytes:
    """A photo-like JPEG of about ``target`` bytes (noise over gradients: hard to compress)."""
    w, h = 1600, 1200
    noise = Image.effect_noise((w, h), 64).convert("RGB")
    grad = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    img = Image.blend(noise, grad, 0.5)
    q = 95
    while True:
        out = io.BytesIO()
        img.save(out, "JPEG", quality=q)
        if out.tell() <= target * 1.1 or q <= 50:
            return out.getvalue()
        q -= 5


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def reference(data: bytes, n: int, concurrency: int) -> float:
    """Sanitizes a second of the bare loop."""
    limits = sanitize.Limits()
    sanitize.sanitize(data, limits)  # warm
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: sanitize.sanitize(data, limits), range(n)))
    return n / (time.perf_counter() - started)


async def login(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    (await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})).raise_for_status()
    r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    return {"id": r.json()["user"]["id"], "headers": {"Authorization": f"Bearer {r.json()['access_token']}"}}


async def uploads(
    http: httpx.AsyncClient, who: dict[str, Any], data: bytes, n: int, concurrency: int, rate: float | None = None
) -> tuple[float, list[float]]:
    """``n`` uploads, ``concurrency`` in flight (paced at ``rate``/s when given)."""
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    start = time.perf_counter()

    async def one(i: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        async with sem:
            t0 = time.perf_counter()
            r = await http.post("/v1/media", files={"file": ("p.jpg", data, "image/jpeg")}, headers=who["headers"])
            assert r.status_code == 201, r.text
            lat.append(time.perf_counter() - t0)

    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start), lat


async def chat_latency(
    ws_url: str, a: dict[str, Any], b: dict[str, Any], conv: str, rate: float, seconds: float
) -> list[float]:
    """send→receive latencies of ``rate`` msg/s for ``seconds`` from a to b."""
    async with websockets.connect(ws_url) as wa, websockets.connect(ws_url) as wb:
        for ws, who in ((wa, a), (wb, b)):
            await ws.send(json.dumps({"type": "auth", "token": who["headers"]["Authorization"][7:]}))
            assert json.loads(await ws.recv())["type"] == "auth_ok"
        sent: dict[str, float] = {}
        got: list[float] = []
        n = int(rate * seconds)

        async def receive() -> None:
            while len(got) < n:
                f = json.loads(await asyncio.wait_for(wb.recv(), 30))
                if f.get("type") == "event" and f["event"].get("client_msg_id") in sent:
                    got.append(time.perf_counter() - sent[f["event"]["client_msg_id"]])

        async def drain_acks() -> None:
            while True:
                await wa.recv()

        rx = asyncio.create_task(receive())
        acks = asyncio.create_task(drain_acks())
        start = time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            cmid = uuid.uuid4().hex
            sent[cmid] = time.perf_counter()
            await wa.send(json.dumps({"type": "send", "conv": conv, "client_msg_id": cmid, "body": f"m{i}"}))
        await asyncio.wait_for(rx, 60)
        acks.cancel()
        return got


def sample_rss(pid: int, stop: threading.Event, out: list[int]) -> None:
    while not stop.is_set():
        out.append(rss_kib(pid))
        time.sleep(0.05)


async def attack(http: httpx.AsyncClient, who: dict[str, Any]) -> dict[str, int]:
    big_real = io.BytesIO()
    Image.effect_noise((7000, 7000), 30).convert("RGB").save(big_real, "JPEG", quality=40)  # 49 MP, at the cap
    files = {
        "header 65535^2": corpus.png_header_claiming(65535, 65535),
        "png 14k^2": corpus.huge_png(),
        "gif 2000 frames": corpus.many_frames_gif(),
        "gzip bomb": corpus.gzip_bomb(),
        "html as png": corpus.HTML,
        "svg": corpus.SVG,
        "polyglot": corpus.jpeg_html_polyglot(),
        "jpeg 7000^2": big_real.getvalue(),
    }
    out = {}
    for name, data in files.items():
        r = await http.post(
            "/v1/media", files={"file": ("x.png", data, "image/png")}, headers=who["headers"], timeout=120
        )
        out[name] = r.status_code
    return out


async def one_run(c: Cluster, data: bytes, args: argparse.Namespace, ref: float) -> dict[str, Any]:
    assert c.media is not None and c.media.pid is not None
    async with httpx.AsyncClient(base_url=c.gateway_url, timeout=60) as http:
        up = await login(http, f"up{uuid.uuid4().hex[:10]}")
        a = await login(http, f"a{uuid.uuid4().hex[:10]}")
        b = await login(http, f"b{uuid.uuid4().hex[:10]}")
        conv = (
            await http.post("/v1/conversations", headers=a["headers"], json={"kind": "dm", "members": [b["id"]]})
        ).json()["id"]
        await uploads(http, up, data, 4, 2)  # warm
        rate, lat = await uploads(http, up, data, args.uploads, args.concurrency)
        _, lat8 = await uploads(http, up, data, args.uploads, 8)
        ws = c.ws_urls[0]
        unloaded = await chat_latency(ws, a, b, conv, args.chat_rate, args.chat_seconds)
        bg = asyncio.create_task(
            uploads(http, up, data, int(ref / 2 * args.chat_seconds), args.concurrency, rate=ref / 2)
        )
        loaded = await chat_latency(ws, a, b, conv, args.chat_rate, args.chat_seconds)
        await bg
        idle = rss_kib(c.media.pid)
        samples: list[int] = []
        stop = threading.Event()
        t = threading.Thread(target=sample_rss, args=(c.media.pid, stop, samples), daemon=True)
        t.start()
        statuses = await attack(http, up)
        stop.set()
        t.join()
    return {
        "uploads_per_s": rate,
        "ratio_to_reference": rate / ref,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
        "p99_ms_at_8": pct(lat8, 0.99) * 1000,
        "chat_p99_ms_unloaded": pct(unloaded, 0.99) * 1000,
        "chat_p99_ms_with_uploads": pct(loaded, 0.99) * 1000,
        "chat_ratio": pct(loaded, 0.99) / pct(unloaded, 0.99),
        "rss_idle_mib": idle / 1024,
        "rss_peak_over_idle_mib": (max(samples) - idle) / 1024,
        "attack_statuses": statuses,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uploads", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--reference-n", type=int, default=60)
    ap.add_argument("--chat-rate", type=float, default=50.0)
    ap.add_argument("--chat-seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data = photo_jpeg()
    print(f"JPEG {len(data) / 1024:.0f} KiB, {Image.open(io.BytesIO(data)).size}", flush=True)
    cap_mib = MAX_PIXELS * 3 / (1 << 20)
    results = []
    with tempfile.TemporaryDirectory(prefix="chat-bench-media-") as d:
        tmp = Path(d)
        s3 = S3Server(tmp / "s3").start()
        nats = NatsServer(tmp / "nats", accounts=[ChatAccount.generate()]).start()
        env = {
            **BENCH_ENV,
            "MEDIA_STORAGE": "s3",
            "MEDIA_S3_ENDPOINT": s3.endpoint,
            "MEDIA_S3_ACCESS_KEY": s3.access_key,
            "MEDIA_S3_SECRET_KEY": s3.secret_key,
            "MEDIA_S3_SECURE": "false",
            "MEDIA_S3_REGION": "us-east-1",
            "MEDIA_RATE_BURST": "0",
            # the gateway's per-user REST write bucket (120 + 5/s) would cap the uploader
            "GATEWAY_RATE_WRITE_BURST": "0",
            "MEDIA_QUOTA_BYTES": "0",
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
        ).start()
        try:
            for i in range(args.repeat):
                ref = reference(data, args.reference_n, args.concurrency)
                r = asyncio.run(one_run(c, data, args, ref))
                r["reference_per_s"] = ref
                results.append(r)
                print(json.dumps({"run": i + 1, **r}), flush=True)
        finally:
            c.stop()
            nats.stop()
            s3.stop()
    keys = [k for k in results[0] if k != "attack_statuses"]
    med = {k: statistics.median(r[k] for r in results) for k in keys}
    print("\nmedians of", len(results), "runs:")
    for k in keys:
        print(f"  {k:28} {med[k]:10.2f}")
    print(f"  memory budget (2.5 x {cap_mib:.0f} MiB)   {2.5 * cap_mib:10.0f} MiB over idle")
    print("  attack corpus statuses:", results[-1]["attack_statuses"])


if __name__ == "__main__":
    main()
