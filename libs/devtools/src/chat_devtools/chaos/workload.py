"""The chaos workload: seeded users, each a ``chat_sdk.ChatClient`` given every gateway
(starting on a different one), chatting in a few groups, uploading small PNGs attached to
their messages, and searching; everything acknowledged is recorded for the checker.

A send is retried by the SDK with the same ``client_msg_id`` (dropped connection, ack
timeout, ``unavailable``) until its deadline; an upload answered with an error is tried
again (a new upload: only acknowledged uploads are promised). User 0 is in every group:
the checker reads history and searches as that user.
"""

from __future__ import annotations

import asyncio
import collections
import random
import struct
import time
import uuid
import zlib
from dataclasses import dataclass, field

from chat_sdk import ChatClient, ChatError, ClientOptions, InternalError, SendResult, SendTimeout, Unauthorized

from chat_devtools.chaos.config import ChaosConfig

PASSWORD = "chaos-password-1"
# client side: reconnect and retry soon after a fault (an app's defaults back off to 30 s)
OPTIONS = dict(backoff_base_s=0.2, backoff_cap_s=2.0, backoff_reset_s=2.0)


def png(w: int, h: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid RGB PNG of one colour (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" + bytes(rgb) * w
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * h)) + chunk(b"IEND", b"")


@dataclass
class Acked:
    cmid: str
    conv: str
    seq: int
    user: int


@dataclass
class Uploaded:
    media_id: str
    mime: str
    size: int
    user: int


@dataclass
class Member:
    i: int
    name: str
    client: ChatClient
    rng: random.Random
    convs: list[str] = field(default_factory=list)
    acked: int = 0
    uploaded: int = 0
    order: list[tuple[str, int]] = field(default_factory=list)  # (conv, seq) in send order
    view: list[tuple[str, int, str]] = field(default_factory=list)  # (conv, seq, kind) from events()


@dataclass
class Record:
    acks: dict[str, Acked] = field(default_factory=dict)
    unacked: list[str] = field(default_factory=list)  # no ack before the deadline
    refused: list[str] = field(default_factory=list)  # valid sends refused for good
    uploads: list[Uploaded] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    upload_retries: int = 0
    searches: int = 0
    search_errors: int = 0


class Workload:
    def __init__(self, urls: list[str], cfg: ChaosConfig) -> None:
        self.urls = urls
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.tag = f"chaos{cfg.seed}x{uuid.uuid4().hex[:8]}"  # the word every message carries
        self.members: list[Member] = []
        self.convs: list[str] = []
        self.rec = Record()
        self.baseline_s = 0.0
        self._stop = asyncio.Event()
        self._senders: list[asyncio.Task[None]] = []
        self._readers: list[asyncio.Task[None]] = []

    # -- setup --------------------------------------------------------------------------
    async def setup(self) -> None:
        n = self.cfg.users
        names = [f"{self.tag}u{i}" for i in range(n)]
        for name in names:
            await ChatClient.register(self.urls, name, PASSWORD)
        opts = ClientOptions(**OPTIONS)  # type: ignore[arg-type]
        for i, name in enumerate(names):
            order = self.urls[i % len(self.urls) :] + self.urls[: i % len(self.urls)]
            client = await ChatClient.connect(order, username=name, password=PASSWORD, options=opts)
            self.members.append(Member(i, name, client, random.Random(self.rng.random())))
            self._readers.append(asyncio.create_task(self._read(self.members[-1])))
        owner, others = self.members[0], self.members[1:]
        groups: list[list[Member]] = [[] for _ in range(self.cfg.convs)]
        for k, m in enumerate(others):  # everyone in at least one group; more at random
            groups[k % self.cfg.convs].append(m)
            for g in groups:
                if m not in g and self.rng.random() < 0.3:
                    g.append(m)
        for g in groups:
            ids = [m.client.user_id or "" for m in g]
            conv = await owner.client.create_conversation("group", members=ids)
            self.convs.append(conv.id)
            for m in (owner, *g):
                m.convs.append(conv.id)
        await self._measure_baseline()

    async def _measure_baseline(self) -> None:
        """One send→ack and one search round trip on the idle system: the unit of every
        deadline in the run."""
        m = self.members[0]
        t0 = time.monotonic()
        res = await m.client.send(self.convs[0], f"{self.tag} baseline", client_msg_id=f"{self.tag}-0-0")
        self.rec.acks[res.client_msg_id] = Acked(res.client_msg_id, self.convs[0], res.seq, 0)
        m.order.append((self.convs[0], res.seq))
        m.acked += 1
        t1 = time.monotonic()
        await m.client.search(self.tag, limit=1)
        self.baseline_s = max(t1 - t0, time.monotonic() - t1)

    # -- running ------------------------------------------------------------------------
    def start(self) -> None:
        self._senders = [asyncio.create_task(self._send_loop(m)) for m in self.members]

    async def stop(self) -> None:
        """Let every user finish the send in hand (each has its deadline), then stop."""
        self._stop.set()
        await asyncio.gather(*self._senders, return_exceptions=True)

    async def close(self) -> None:
        self._stop.set()
        for t in [*self._senders, *self._readers]:
            t.cancel()
        await asyncio.gather(*self._senders, *self._readers, return_exceptions=True)
        await asyncio.gather(*(m.client.close() for m in self.members), return_exceptions=True)

    def counts(self) -> tuple[list[int], int]:
        return [m.acked for m in self.members], len(self.rec.uploads)

    async def progressed(self, since: tuple[list[int], int], uploads: bool, timeout: float) -> bool:
        """True once every user has had a message acked since ``since`` (and, with
        ``uploads``, one more upload was acknowledged), polling until ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            acked, ups = self.counts()
            if all(a > b for a, b in zip(acked, since[0], strict=True)) and (not uploads or ups > since[1]):
                return True
            await asyncio.sleep(0.05)
        return False

    @property
    def send_deadline_s(self) -> float:
        return self.cfg.budget(self.baseline_s, extra_s=60.0)

    async def _send_loop(self, m: Member) -> None:
        k = 0
        while not self._stop.is_set():
            k += 1
            conv = m.rng.choice(m.convs)
            cmid = f"{self.tag}-{m.i}-{k}"
            attachments: list[str] = []
            if self.cfg.upload_every and k % self.cfg.upload_every == 0:
                media_id = await self._upload(m, k)
                attachments = [media_id] if media_id else []
            body = f"{self.tag} from u{m.i} number {k}"
            res = await self._send(m, conv, cmid, body, attachments)
            if res is None:
                continue
            self.rec.acks[cmid] = Acked(cmid, conv, res.seq, m.i)
            m.order.append((conv, res.seq))
            m.acked += 1
            if self.cfg.search_every and k % self.cfg.search_every == 0:
                await self._search(m)
            await asyncio.sleep(m.rng.uniform(*self.cfg.think_s))

    async def _send(self, m: Member, conv: str, cmid: str, body: str, attachments: list[str]) -> SendResult | None:
        """The SDK retries ``unavailable``, timeouts and lost connections itself; a server
        error (``internal``) is sent again here with the same ``client_msg_id``, as an app
        would. Any other refusal of these valid messages is recorded: the checker fails it."""
        deadline = time.monotonic() + self.send_deadline_s
        while True:
            try:
                return await m.client.send(
                    conv,
                    body,
                    client_msg_id=cmid,
                    attachments=attachments or None,
                    deadline_s=max(0.1, deadline - time.monotonic()),
                )
            except SendTimeout:
                self.rec.unacked.append(cmid)
                return None
            except InternalError as exc:
                self.rec.errors[f"send {type(exc).__name__} (sent again)"] += 1
                if time.monotonic() > deadline:
                    self.rec.unacked.append(cmid)
                    return None
                await asyncio.sleep(0.2)
            except Unauthorized:
                raise
            except ChatError as exc:  # refused for good
                self.rec.refused.append(f"{cmid}: {type(exc).__name__}: {exc}")
                return None

    async def _upload(self, m: Member, k: int) -> str | None:
        rgb = (m.rng.randrange(256), m.rng.randrange(256), m.rng.randrange(256))
        data = png(m.rng.randrange(8, 64), m.rng.randrange(8, 64), rgb)
        deadline = time.monotonic() + self.send_deadline_s
        attempt = 0
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                up = await m.client.upload(data, name=f"{self.tag}-{m.i}-{k}.png")
            except Unauthorized:
                raise
            except ChatError as exc:  # unavailable while its media replica or NATS is down
                self.rec.upload_retries += 1
                self.rec.errors[f"upload {type(exc).__name__}"] += 1
                attempt += 1
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt) * m.rng.random())
                continue
            self.rec.uploads.append(Uploaded(up.media_id, up.mime, up.size, m.i))
            m.uploaded += 1
            return up.media_id
        return None

    async def _search(self, m: Member) -> None:
        try:
            await m.client.search(self.tag, limit=10)
            self.rec.searches += 1
        except ChatError:
            self.rec.search_errors += 1

    async def _read(self, m: Member) -> None:
        try:
            async for ev in m.client.events():
                seq = getattr(ev, "seq", None)
                if isinstance(seq, int):
                    m.view.append((str(getattr(ev, "conv", "")), seq, str(getattr(ev, "kind", ""))))
        except ChatError as exc:
            self.rec.errors[f"events of u{m.i} ended: {type(exc).__name__}"] += 1
