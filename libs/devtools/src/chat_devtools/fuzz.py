"""Bad input at volume (hardening §7): mutated and random WebSocket frames and REST requests
against a real stack, beside valid traffic whose delivery is checked.

What a fuzz frame can be: a valid frame with one field of the wrong type, huge, negative,
missing or unknown; a JSON value that is no object; an unknown type; deeply nested JSON;
truncated JSON; invalid UTF-8 in a text frame; a binary frame; an oversize frame; text full
of control, bidirectional and other odd characters. A fuzz request: any route of the
gateway's own OpenAPI document, with mutated path and query parameters and a mutated,
random, invalid or oversize body, with and without a valid token.

What must hold (``FuzzReport.problems``): no 5xx (and no 400: malformed input is 422), a
problem body's ``status`` equal to the response's, no ``internal`` error frame, and (checked
by the caller) no process restarted, memory flat, and the valid traffic (``ValidTraffic``)
delivered exactly once and in order. Used by ``tests/integration/test_fuzz.py`` (a short
profile) and ``bench/fuzz.py`` (a million frames). Loopback only; every loop is bounded by
its count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import string
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

ODD = "\x00\x01\x1b\x7f\u0085\u00a0\u061c\u200b\u200d\u200e\u202e\u2066\ufeff\uffff\U0001f600\U0010ffff"
NUMBERS = [
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    -(2**31),
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    -(10**30),
    1.5,
    -0.0,
    1e308,
]
TEMPLATES: list[dict[str, Any]] = [
    {"type": "send", "conv": "", "client_msg_id": "", "body": "hello"},
    {"type": "send", "conv": "", "client_msg_id": "", "body": "hi", "reply_to": 1},
    {"type": "sync", "positions": {}},
    {"type": "delivered", "conv": "", "seq": 1},
    {"type": "read", "conv": "", "seq": 1},
    {"type": "typing", "conv": ""},
    {"type": "ping"},
    {"type": "auth", "token": "x"},
]


def _dumps(obj: Any) -> bytes:
    """JSON with integers beyond 64 bits (which orjson refuses) and deep nesting."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")
    except RecursionError:
        return b'{"type":"send","x":' + b"[" * 5000 + b"]" * 5000 + b"}"


def _text(rng: random.Random, n: int | None = None) -> str:
    n = rng.choice([0, 1, 5, 64, 65, 300, 5000]) if n is None else n
    pool = string.printable + ODD
    return "".join(rng.choice(pool) for _ in range(min(n, 5000))) * max(1, n // 5000)


# Mutations after which the gateway closes the connection (4008, 1007, 1009), and the others.
CLOSING = (4, 7, 8, 9, 10)
STAYING = (0, 1, 2, 3, 5, 6)


class Mutator:
    def __init__(self, seed: int, convs: list[str], closing_share: float = 5 / 11) -> None:
        """``closing_share``: how many frames are of a kind that closes the connection (each
        costs a reconnect; the long benchmark lowers it to send more frames a second)."""
        self.rng = random.Random(seed)
        self.convs = convs or ["none"]
        self.closing_share = closing_share

    def value(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if r < 0.3:
            return self.rng.choice(NUMBERS)
        if r < 0.55:
            return _text(self.rng)
        if r < 0.65:
            return self.rng.choice([True, False, None])
        if depth > 2:
            return None
        if r < 0.8:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {_text(self.rng, 5): self.value(depth + 1) for _ in range(self.rng.randint(0, 4))}

    def deep(self) -> Any:
        nested: Any = 1
        for _ in range(self.rng.choice([50, 200, 1000])):
            nested = [nested] if self.rng.random() < 0.5 else {"a": nested}
        return nested

    def valid(self) -> dict[str, Any]:
        f = dict(self.rng.choice(TEMPLATES))
        conv = self.rng.choice(self.convs)
        if "conv" in f:
            f["conv"] = conv
        if "client_msg_id" in f:
            f["client_msg_id"] = uuid.uuid4().hex
        if f["type"] == "sync":
            f["positions"] = {conv: self.rng.randint(0, 5)}
        f["ref"] = uuid.uuid4().hex[:8]
        return f

    def frame(self) -> tuple[str, bytes]:
        """("text" | "binary", payload)."""
        rng = self.rng
        kind = rng.choice(CLOSING if rng.random() < self.closing_share else STAYING)
        f = self.valid()
        if kind <= 3:  # one field mutated, removed or added
            key = rng.choice([*f.keys(), "extra"])
            op = rng.randrange(3)
            if op == 0 and key != "type":
                f.pop(key, None)
            else:
                f[key] = self.deep() if rng.random() < 0.05 else self.value()
        elif kind == 4:
            return "text", _dumps(self.value())
        elif kind == 5:
            f["type"] = rng.choice(["", "SEND", "sendx", _text(rng, 10), "event", "ack"])
        elif kind == 6:
            f[rng.choice(["body", "positions", "x"])] = self.deep()
        elif kind == 7:
            raw = _dumps(f)
            return "text", raw[: rng.randrange(1, len(raw))]
        elif kind == 8:
            raw = _dumps(f)
            return "text", raw[:-2] + rng.choice([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80"]) + raw[-2:]
        elif kind == 9:
            return "binary", _dumps(f)
        else:
            f["body"] = _text(rng, rng.choice([4001, 70_000, 300_000]))
        return "text", _dumps(f)


@dataclass
class FuzzReport:
    frames: int = 0
    requests: int = 0
    closes: Counter[int | None] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(problem)


# An access token, or where to get a current one (runs longer than a token lives).
Token = str | Callable[[], Awaitable[str]]


async def current(token: Token) -> str:
    return token if isinstance(token, str) else await token()


async def fuzz_frames(
    ws_url: str,
    token: Token,
    convs: list[str],
    n: int,
    seed: int,
    report: FuzzReport,
    pool: int = 0,
    closing_share: float = 5 / 11,
) -> None:
    """Send ``n`` fuzz frames over a connection of ``token``'s user; reconnect when closed.
    Frames count once the gateway has handled them: after every ``BARRIER`` frames a ping
    must come back as a pong (the gateway answers in order), and a frame that closes the
    connection counts when the close arrives. With ``pool``, that many distinct frames are
    made first and sent in turn (the generator then costs nothing per frame)."""
    m = Mutator(seed, convs, closing_share)
    frames = [m.frame() for _ in range(pool)]
    done, pause = 0, 0.0
    while done < n:
        got = 0
        try:
            async with websockets.connect(ws_url, max_size=None, compression=None, open_timeout=30) as ws:
                await ws.send(orjson.dumps({"type": "auth", "token": await current(token)}).decode())
                pongs: dict[str, asyncio.Future[None]] = {}
                reader = asyncio.create_task(_read(ws, report, pongs))
                try:
                    got = await _pour(ws, frames, m, n - done, pongs, report)
                finally:
                    reader.cancel()
        except (websockets.ConnectionClosed, TimeoutError):
            pass
        except OSError as exc:
            report.note(f"connect failed: {exc!r}")
        done += got
        # a connection refused at once (the user's connection cap while old ones close):
        # back off instead of storming the gateway
        pause = 0.0 if got else min(1.0, max(0.05, pause * 2))
        if pause:
            await asyncio.sleep(pause)


BARRIER = 50


async def _pour(
    ws: ClientConnection,
    frames: list[tuple[str, bytes]],
    m: Mutator,
    left: int,
    pongs: dict[str, asyncio.Future[None]],
    report: FuzzReport,
) -> int:
    """Frames until ``left`` are handled or the connection closes; how many were handled."""
    done = batch = 0
    while done + batch < left:
        kind, payload = frames[(report.frames + batch) % len(frames)] if frames else m.frame()
        try:
            await ws.send(payload, text=kind == "text")
        except websockets.ConnectionClosed:  # closed by an earlier frame of this batch
            done += batch
            report.frames += batch
            break
        batch += 1
        closes = kind == "binary" or payload[:1] not in (b"{",) or len(payload) > 64 * 1024
        if closes or batch == BARRIER or done + batch == left:
            if closes:  # wait for the close; the frames before it were handled in order
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.wait_closed(), 5)
            if ws.state is State.OPEN:
                ref = uuid.uuid4().hex[:8]
                pongs[ref] = asyncio.get_running_loop().create_future()
                await ws.send(orjson.dumps({"type": "ping", "ref": ref}).decode())
                try:
                    await asyncio.wait_for(pongs[ref], 30)
                except (TimeoutError, websockets.ConnectionClosed):
                    pass  # closed by one of the batch: counted below, then reconnect
                finally:
                    pongs.pop(ref, None)
            done += batch
            report.frames += batch
            batch = 0
            if ws.state is not State.OPEN:
                break
    return done


async def _read(ws: ClientConnection, report: FuzzReport, pongs: dict[str, asyncio.Future[None]]) -> None:
    try:
        async for raw in ws:
            f = orjson.loads(raw)
            if f.get("type") == "error":
                report.errors[f.get("code", "?")] += 1
                if f.get("code") == "internal":
                    report.note(f"internal error frame: {f}")
            elif f.get("type") == "pong" and f.get("ref") in pongs:
                fut = pongs[f["ref"]]
                if not fut.done():
                    fut.set_result(None)
    except websockets.ConnectionClosed:
        pass
    finally:  # closed (normally or not): nobody waits for a pong any longer
        report.closes[ws.close_code] += 1
        for fut in pongs.values():
            if not fut.done():
                fut.set_exception(websockets.ConnectionClosed(None, None))


class RestFuzzer:
    def __init__(self, seed: int, openapi: dict[str, Any], convs: list[str]) -> None:
        self.m = Mutator(seed, convs)
        self.ops = [
            (method.upper(), path, op)
            for path, item in openapi.get("paths", {}).items()
            for method, op in item.items()
            if method in ("get", "post", "put", "patch", "delete")
        ]

    def request(self) -> tuple[str, str, dict[str, Any], bytes | None]:
        rng = self.m.rng
        method, path, op = rng.choice(self.ops)
        for name in [p["name"] for p in op.get("parameters", []) if p.get("in") == "path"]:
            path = path.replace(
                "{" + name + "}",
                str(rng.choice([*self.m.convs, "x", "-1", "99999999999999999999", "%00", "..", "a" * 70, "%E2%80%AE"])),
            )
        params = {p["name"]: str(self.m.value()) for p in op.get("parameters", []) if p.get("in") == "query"}
        if rng.random() < 0.2:
            params[_text(rng, 4)] = _text(rng, 10)
        body: bytes | None = None
        if method in ("POST", "PUT", "PATCH"):
            choice = rng.randrange(5)
            if choice == 0:
                body = _dumps(self.m.value())
            elif choice == 1:
                body = _dumps(
                    {
                        k: self.m.value()
                        for k in (
                            "username",
                            "password",
                            "user_id",
                            "body",
                            "kind",
                            "members",
                            "client_msg_id",
                            "role",
                            "name",
                        )
                    }
                )
            elif choice == 2:
                body = b'{"a": ' + rng.choice([b"\xff", b"[" * 3000, b"1e999999", b'"\\ud800"', b"tru"])
            elif choice == 3:
                body = b"x" * rng.choice([10, 300_000])
            else:
                body = _dumps(self.m.deep())
        return method, path, params, body


async def fuzz_rest(
    base_url: str, token: Token, openapi: dict[str, Any], convs: list[str], n: int, seed: int, report: FuzzReport
) -> None:
    f = RestFuzzer(seed, openapi, convs)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for i in range(n):
            method, path, params, body = f.request()
            headers = {"Content-Type": "application/json"}
            if i % 3:
                headers["Authorization"] = f"Bearer {await current(token)}"
            try:
                r = await http.request(method, path, params=params, content=body, headers=headers)
            except httpx.HTTPError as exc:
                report.note(f"{method} {path}: {exc!r}")
                continue
            report.requests += 1
            report.statuses[r.status_code] += 1
            if r.status_code >= 500 or r.status_code == 400:  # the contract has no 400: 422 invalid
                report.note(f"{method} {path} {params} -> {r.status_code} {r.text[:200]}")
            elif r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/problem+json"):
                problem = r.json()
                if problem.get("status") != r.status_code:
                    report.note(f"{method} {path}: problem status {problem.get('status')} on a {r.status_code}")


RETRY = ("unavailable", "rate_limited")  # refusals a client retries with the same client_msg_id


@dataclass
class ValidTraffic:
    """Two (or more) users exchanging messages in one conversation while the fuzzing runs;
    afterwards every acked message must have reached every one of them exactly once, in
    seq order (``problems``)."""

    acked: dict[str, dict[str, int]] = field(default_factory=dict)  # user -> client_msg_id -> seq
    seen: dict[str, list[int]] = field(default_factory=dict)  # user -> seqs of the conv, in arrival order
    # a long run re-authenticates in place this often (a fresh token from the user's Token)
    reauth_s: float = 600.0
    _sending: int = 0

    async def run(
        self, ws_url: str, users: dict[str, Token], conv: str, n: int, within: float = 120, pace_s: float = 0.0
    ) -> None:
        """Each user sends ``n`` messages, one after the other (``pace_s`` apart)."""
        self._sending = len(users)
        self._pace = pace_s
        await asyncio.wait_for(
            asyncio.gather(*(self._one(ws_url, uid, token, conv, n) for uid, token in users.items())), within
        )

    _pace: float = 0.0

    def _all_acked(self) -> set[int]:
        return {seq for m in self.acked.values() for seq in m.values()}

    async def _one(self, ws_url: str, uid: str, token: Token, conv: str, n: int) -> None:
        acked = self.acked.setdefault(uid, {})
        seen = self.seen.setdefault(uid, [])
        async with websockets.connect(ws_url, max_size=None, compression=None) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": await current(token)}).decode())
            assert orjson.loads(await ws.recv())["type"] == "auth_ok"
            authed = time.monotonic()

            def take(f: dict[str, Any]) -> None:
                if f["type"] == "event" and f["event"]["conv"] == conv:
                    seen.append(f["event"]["seq"])
                elif f["type"] == "error" and f.get("conv") == conv:
                    raise AssertionError(f"valid send refused: {f}")

            for i in range(n):
                if time.monotonic() - authed > self.reauth_s:  # before the token expires (4003)
                    reauth = {"type": "auth", "ref": f"reauth-{i}", "token": await current(token)}
                    await ws.send(orjson.dumps(reauth).decode())
                    authed = time.monotonic()
                cmid = f"{uid}-{i}"
                frame = orjson.dumps(
                    {"type": "send", "ref": cmid, "conv": conv, "client_msg_id": cmid, "body": f"valid {i}"}
                ).decode()
                await ws.send(frame)
                while cmid not in acked:
                    f = orjson.loads(await ws.recv())
                    if f["type"] == "ack" and f["ref"] == cmid:
                        acked[cmid] = f["seq"]
                    elif f["type"] == "error" and f.get("ref") == cmid and f["code"] in RETRY:
                        await asyncio.sleep(f.get("retry_after_ms", 100) / 1000)  # as a client does
                        await ws.send(frame)
                    else:
                        take(f)
                if self._pace:
                    await asyncio.sleep(self._pace)
            self._sending -= 1
            # until everyone is done and every acked event has arrived here (run's timeout bounds it)
            while self._sending or not self._all_acked() <= set(seen):
                try:
                    take(orjson.loads(await asyncio.wait_for(ws.recv(), 0.5)))
                except TimeoutError:
                    continue

    def problems(self) -> list[str]:
        out = []
        for uid, seen in self.seen.items():
            if seen != sorted(set(seen)):
                out.append(f"{uid}: events out of order or twice: {seen[:50]}")
            missing = self._all_acked() - set(seen)
            if missing:
                out.append(f"{uid}: acked events never delivered: {sorted(missing)[:20]}")
        return out
