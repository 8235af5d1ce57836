"""Centrifugo as a server row of bench/fanout.py: build, configure, run, token, publish.

Centrifugo 6.9.1 (Go; the server platform teams would pick instead, PERFORMANCE.md) is
built from the Go module proxy only (`go install github.com/centrifugal/centrifugo/v6@v6.9.1`,
GOPROXY without `direct`: no VCS, no release binaries) into `.cache/bench/bin/` (git-ignored)
the first time it is needed; later runs reuse the binary.

The server runs on 127.0.0.1 with a generated v6 config (keys from the module's
`internal/configtypes`): HS256 connection tokens, one namespace `fanout` whose channels
authenticated clients may subscribe and publish to (client-side publish, like the gateway's
sender), no history, recovery, presence or join/leave, app-level pings every heartbeat_s
with a pong timeout below it (Centrifugo requires pong_timeout < ping_interval), the HTTP
API behind a key, usage statistics off (nothing leaves the machine), log level warn. The
process gets SIGTERM when the bench process dies (PR_SET_PDEATHSIG) and on leaving
`server()`.

Client protocol v2, JSON over WebSocket at `/connection/websocket`: commands
`{"id":n,"connect":{"token":...}}`, `{"id":n,"subscribe":{"channel":...}}`,
`{"id":n,"publish":{"channel":...,"data":{...}}}`; replies carry the same id; publications
arrive as `{"push":{"channel":...,"pub":{"data":{...},"info":{...}}}}`; the server pings
with `{}` and the client answers `{}`. One WebSocket frame may carry several replies and
pushes, one JSON object per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
from chat_devtools.ports import free_port
from websockets.asyncio.client import ClientConnection

MODULE = "github.com/centrifugal/centrifugo/v6"
VERSION = "v6.9.1"
BIN_DIR = Path(__file__).resolve().parent.parent / ".cache" / "bench" / "bin"
BINARY = BIN_DIR / "centrifugo"
BUILD_TIMEOUT_S = 30 * 60
NAMESPACE = "fanout"
CHANNEL = f"{NAMESPACE}:bench"
WS_PATH = "/connection/websocket"
ID_STEP = 10_000_000  # publish command id = (step + 1) * ID_STEP + n: the ack names its step


# --- the binary -----------------------------------------------------------------------------
def can_build() -> bool:
    """True when the binary is there or `go` is on PATH to build it."""
    return BINARY.exists() or shutil.which("go") is not None


def _proxy_only(goproxy: str) -> str:
    """GOPROXY without `direct` and `off`: modules come from a module proxy, nowhere else."""
    proxies = [p for p in goproxy.replace("|", ",").split(",") if p.strip() and p.strip() not in ("direct", "off")]
    return ",".join(proxies) or "https://proxy.golang.org"


def ensure_binary() -> Path:
    """The cached binary, built first if missing (about 5 minutes of compiling on 2 cores)."""
    if BINARY.exists():
        return BINARY
    go = shutil.which("go")
    if go is None:
        sys.exit(
            f"Centrifugo is not built ({BINARY} is missing) and `go` is not on PATH: install Go >= 1.26, "
            f"or leave centrifugo out of --servers"
        )
    goproxy = subprocess.run([go, "env", "GOPROXY"], capture_output=True, text=True, timeout=60).stdout.strip()
    env = {**os.environ, "GOBIN": str(BIN_DIR), "GOPROXY": _proxy_only(goproxy), "GOTOOLCHAIN": "local"}
    cmd = [go, "install", f"{MODULE}@{VERSION}"]
    print(f"building Centrifugo {VERSION} into {BIN_DIR} (about 5 minutes): {' '.join(cmd)}", file=sys.stderr)
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        rc = proc.wait(timeout=BUILD_TIMEOUT_S)
    except BaseException:  # timeout, Ctrl-C: stop the go command and its compilers
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if rc != 0 or not BINARY.exists():
        sys.exit(f"building Centrifugo failed (exit {rc})")
    print(f"built Centrifugo in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return BINARY


# --- the server -----------------------------------------------------------------------------
def config(port: int, secret: str, api_key: str, heartbeat_s: float) -> dict[str, object]:
    """The v6 config: the closest equivalent of the gateway's behaviour for this workload."""
    return {
        "http_server": {"address": "127.0.0.1", "port": port},
        "log": {"level": "warn"},
        "client": {
            "token": {"hmac_secret_key": secret},
            "allowed_origins": ["http://127.0.0.1"],  # the receivers send no Origin
            "ping_interval": f"{heartbeat_s:g}s",
            "pong_timeout": f"{0.8 * heartbeat_s:g}s",
        },
        "channel": {
            "namespaces": [
                {
                    "name": NAMESPACE,
                    "allow_subscribe_for_client": True,
                    "allow_publish_for_client": True,
                    # history_size 0, presence and join_leave off, no recovery: the defaults
                }
            ]
        },
        "http_api": {"key": api_key},
        "health": {"enabled": True},
        "usage_stats": {"disabled": True},
        "shutdown": {"timeout": "5s"},
    }


_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the bench process goes away."""
    _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Server:
    port: int
    pid: int
    secret: str
    api_key: str

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{WS_PATH}"

    def token(self, user: str, ttl_s: int = 3600) -> str:
        return jwt.encode({"sub": user, "exp": int(time.time()) + ttl_s}, self.secret, algorithm="HS256")


@contextlib.asynccontextmanager
async def server(binary: Path, workdir: Path, heartbeat_s: float) -> AsyncIterator[Server]:
    """Centrifugo on a free loopback port, healthy within 30 s; stopped on exit."""
    port, secret, api_key = free_port(), secrets.token_hex(32), secrets.token_hex(16)
    cfg = workdir / "centrifugo.json"
    cfg.write_text(json.dumps(config(port, secret, api_key, heartbeat_s), indent=2))
    log = (workdir / "centrifugo.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        "--config",
        str(cfg),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,
        preexec_fn=_die_with_parent,
    )
    try:
        await _wait_healthy(port, proc, 30.0, workdir / "centrifugo.log")
        yield Server(port, proc.pid, secret, api_key)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()
        lines = (workdir / "centrifugo.log").read_text(errors="replace").splitlines()
        # `go install` sets no version string (release builds pass it with -ldflags): that
        # warning is expected here and is all it changes.
        tail = "\n".join(line for line in lines if "development build" not in line)
        if tail:
            print("centrifugo log (warn and above):\n" + tail[-2000:], file=sys.stderr)


async def _wait_healthy(port: int, proc: asyncio.subprocess.Process, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"centrifugo exited ({proc.returncode}): {log.read_text()[-1000:]}")  # noqa: ASYNC240
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/health")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"centrifugo not healthy on port {port} within {timeout_s:g} s")


# --- the sender -----------------------------------------------------------------------------
async def connect_client(ws: ClientConnection, token: str) -> None:
    """The `connect` command; the connection is usable once its reply came back."""
    await ws.send(json.dumps({"id": 1, "connect": {"token": token, "name": "fanout-bench"}}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    if "connect" not in reply:
        raise RuntimeError(f"centrifugo refused the sender: {reply}")


def publish_frame(data: Callable[[int, float, int], str]) -> Callable[[int, float, int], str]:
    """A `publish` command into CHANNEL whose data is ``data(step, due, n)`` (a JSON object)."""
    head = '","data":'

    def frame(step: int, due: float, n: int) -> str:
        return f'{{"id":{(step + 1) * ID_STEP + n},"publish":{{"channel":"{CHANNEL}{head}{data(step, due, n)}}}}}'

    return frame


async def read_answers(ws: ClientConnection, acked: dict[int, int], errors: dict[str, int]) -> None:
    """The sender's reader: counts publish replies per step, answers the server's pings."""
    with contextlib.suppress(Exception):
        async for raw in ws:
            for line in (raw.encode() if isinstance(raw, str) else raw).split(b"\n"):
                if line == b"{}":
                    await ws.send("{}")
                    continue
                if not line:
                    continue
                r = json.loads(line)
                if "error" in r:
                    code = str(r["error"].get("code", "?"))
                    errors[code] = errors.get(code, 0) + 1
                elif "publish" in r:
                    k = (r["id"] // ID_STEP - 1) // 2  # the ladder step (2k warm-up, 2k + 1 measured)
                    acked[k] = acked.get(k, 0) + 1
