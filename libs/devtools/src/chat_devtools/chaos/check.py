"""The checker of a chaos run. After the last fault and the users stopped sending:

- **history vs acks** (every conversation, read as user 0, who is in all of them): history
  seqs are 1..N without gaps; every acknowledged ``client_msg_id`` is there (else *lost*)
  exactly once (else *duplicated*, counted over every stored message) at the seq its ack
  carried, and each user's sequential sends in a conversation have increasing seqs (else
  *reordered*, with gaps and ack≠stored seqs);
- **views**: each client's ``events()`` per conversation equals history from the first
  event it got, in order, each once (waited for until they caught up);
- **uploads**: every acknowledged upload is served (``GET /v1/media/{id}``) to its uploader
  with the acknowledged size, and is a PNG;
- **search** and **presence**, concurrently: every acknowledged message is found by its
  word (paging through ``GET /v1/search``) within the search deadline; the last user closes
  its client and every other user is reported online and it offline within the presence
  deadline.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from chat_sdk import ChatClient, ChatError

from chat_devtools.chaos.faults import FaultRecord
from chat_devtools.chaos.workload import Member, Workload

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Report:
    seed: int
    acked: int = 0
    unacked: int = 0
    refused: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    view_errors: int = 0
    presence_converged: bool = False
    presence_s: float | None = None
    searchable: int = 0
    search_s: float | None = None
    unsearchable: list[tuple[str, int]] = field(default_factory=list)
    uploads: int = 0
    uploads_ok: int = 0
    faults: list[FaultRecord] = field(default_factory=list)
    duration_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def row(self) -> dict[str, Any]:
        def secs(v: float | None) -> str:
            return f"{v:.1f}s" if v is not None else "-"

        return {
            "seed": self.seed,
            "acked": self.acked,
            "unacked/refused": f"{self.unacked}/{self.refused}",
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "views ok": "yes" if self.view_errors == 0 else f"no ({self.view_errors})",
            "presence": f"yes ({secs(self.presence_s)})" if self.presence_converged else "NO",
            "searchable": f"{self.searchable}/{self.acked} ({secs(self.search_s)})",
            "uploads": f"{self.uploads_ok}/{self.uploads}",
            "faults": f"{sum(1 for f in self.faults if f.recovered_s is not None)}/{len(self.faults)}",
            "duration": f"{self.duration_s:.0f}s",
        }


async def _retry(call: Any, deadline: float) -> Any:
    """``await call()`` until it does not raise a ChatError (services just recovered)."""
    while True:
        try:
            return await call()
        except ChatError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _history(client: ChatClient, conv: str, deadline: float) -> list[Any]:
    out: list[Any] = []
    after = 0
    while True:
        page = await _retry(lambda a=after: client.history(conv, after=a, limit=200), deadline)
        out += page.events
        if not page.has_more or not page.events:
            return out
        after = page.events[-1].seq


def check_log(w: Workload, histories: dict[str, list[Any]], r: Report) -> None:
    stored: collections.Counter[str] = collections.Counter()
    at: dict[str, tuple[str, int]] = {}
    for conv, events in histories.items():
        seqs = [e.seq for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            r.reordered += 1
            r.problem(f"{conv}: history seqs are not 1..{len(seqs)}")
        for e in events:
            if e.kind == "message" and e.client_msg_id:
                stored[e.client_msg_id] += 1
                at[e.client_msg_id] = (conv, e.seq)
    r.duplicated = sum(n - 1 for n in stored.values() if n > 1)
    lost = [a.cmid for a in w.rec.acks.values() if a.cmid not in stored]
    moved = [a.cmid for a in w.rec.acks.values() if a.cmid in at and at[a.cmid] != (a.conv, a.seq)]
    r.lost = len(lost)
    out_of_order = 0
    for m in w.members:
        last: dict[str, int] = {}
        for conv, seq in m.order:
            if seq <= last.get(conv, 0):
                out_of_order += 1
            last[conv] = seq
    r.reordered += len(moved) + out_of_order
    if lost:
        r.problem(f"{len(lost)} acknowledged messages lost, e.g. {lost[:5]}")
    if r.duplicated:
        r.problem(f"{r.duplicated} duplicate stored messages: {[k for k, n in stored.items() if n > 1][:5]}")
    if moved:
        r.problem(f"{len(moved)} messages stored at another seq than acked, e.g. {moved[:5]}")
    if out_of_order:
        r.problem(f"{out_of_order} sequential sends acknowledged out of order")
    if w.rec.refused:
        r.problem(f"{len(w.rec.refused)} valid sends refused for good, e.g. {w.rec.refused[:3]}")
    if w.rec.unacked:
        r.problem(f"{len(w.rec.unacked)} sends not acknowledged within the send deadline: {w.rec.unacked[:5]}")


def _view_errors(m: Member, histories: dict[str, list[Any]]) -> list[str]:
    bad = []
    for conv in m.convs:
        got = [(s, k) for c, s, k in m.view if c == conv]
        want_all = [(e.seq, e.kind) for e in histories[conv]]
        want = [x for x in want_all if got and x[0] >= got[0][0]]
        if got != want:
            bad.append(f"u{m.i} {conv}: view of {len(got)} events != history of {len(want)} from seq {got[:1]}")
    return bad


async def check_views(w: Workload, histories: dict[str, list[Any]], r: Report, timeout: float) -> None:
    """Wait until every client's view reached the end of history, then compare."""
    last = {conv: (events[-1].seq if events else 0) for conv, events in histories.items()}
    deadline = time.monotonic() + timeout

    def caught_up(m: Member) -> bool:
        seen = {c: s for c, s, _ in m.view}
        return all(seen.get(c, 0) >= last[c] for c in m.convs)

    while not all(caught_up(m) for m in w.members) and time.monotonic() < deadline:  # noqa: ASYNC110 (polling)
        await asyncio.sleep(0.1)
    for m in w.members:
        bad = _view_errors(m, histories)
        r.view_errors += len(bad)
        for b in bad[:3]:
            r.problem(b)


async def check_uploads(w: Workload, r: Report, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    r.uploads = len(w.rec.uploads)
    for up in w.rec.uploads:
        client = w.members[up.user].client
        try:
            data = await _retry(lambda c=client, mid=up.media_id: c.download(mid), deadline)
        except ChatError as exc:
            r.problem(f"upload {up.media_id} of u{up.user} not retrievable: {exc!r}")
            continue
        if len(data) == up.size and data.startswith(PNG_MAGIC) and up.mime == "image/png":
            r.uploads_ok += 1
        else:
            r.problem(f"upload {up.media_id}: {len(data)} bytes ({data[:8]!r}), acknowledged {up.size} {up.mime}")


async def check_search(w: Workload, r: Report, timeout: float) -> None:
    """Page through every hit of the run's word as user 0 until all acked messages are
    found or the deadline passes."""
    want = {(a.conv, a.seq) for a in w.rec.acks.values()}
    client = w.members[0].client
    t0 = time.monotonic()
    found: set[tuple[str, int]] = set()
    while True:
        found = set()
        cursor: str | None = None
        try:
            while True:
                page = await client.search(w.tag, limit=100, cursor=cursor)
                found |= {(h.event.conv, h.event.seq) for h in page.hits}
                cursor = page.next_cursor
                if not cursor:
                    break
        except ChatError:
            pass  # counted as not found yet
        if want <= found or time.monotonic() - t0 > timeout:
            break
        await asyncio.sleep(0.25)
    r.searchable = len(want & found)
    if want <= found:
        r.search_s = time.monotonic() - t0
    else:
        missing = sorted(want - found)
        r.unsearchable = missing
        r.problem(f"{len(missing)} acknowledged messages not searchable after {timeout:.0f}s, e.g. {missing[:5]}")


async def check_presence(w: Workload, r: Report, timeout: float) -> None:
    """The last user closes its client; everyone else must be online, it offline."""
    leaver = w.members[-1]
    await leaver.client.close()
    watcher = w.members[0].client
    want = {m.client.user_id: "online" for m in w.members[1:-1]} | {leaver.client.user_id: "offline"}
    t0 = time.monotonic()
    got: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            url = (watcher.gateway_url or w.urls[0]) + "/v1/presence"
            try:
                res = await http.get(
                    url,
                    params={"user_ids": ",".join(str(u) for u in want)},
                    headers={"Authorization": f"Bearer {watcher.tokens.access_token}"},
                )
                if res.status_code == 200:
                    got = {p["user_id"]: p["status"] for p in res.json()["presence"]}
            except httpx.HTTPError:
                pass
            if got == want or time.monotonic() - t0 > timeout:
                break
            await asyncio.sleep(0.1)
    r.presence_converged = got == want
    if r.presence_converged:
        r.presence_s = time.monotonic() - t0
    else:
        wrong = {u: (got.get(str(u)), s) for u, s in want.items() if got.get(str(u)) != s}
        r.problem(f"presence did not converge within {timeout:.0f}s: (got, want) {wrong}")


async def check(w: Workload, r: Report) -> Report:
    cfg = w.cfg
    r.acked, r.unacked, r.refused = len(w.rec.acks), len(w.rec.unacked), len(w.rec.refused)
    deadline = time.monotonic() + cfg.budget(w.baseline_s)
    client = w.members[0].client
    histories = {conv: await _history(client, conv, deadline) for conv in w.convs}
    check_log(w, histories, r)
    await check_views(w, histories, r, cfg.budget(w.baseline_s))
    await check_uploads(w, r, cfg.budget(w.baseline_s))
    await asyncio.gather(
        check_search(w, r, cfg.budget(w.baseline_s, extra_s=cfg.search_redeliveries * cfg.search_redelivery_s)),
        check_presence(w, r, cfg.budget(w.baseline_s, extra_s=4 * cfg.heartbeat_s)),
    )
    if w.rec.errors:
        r.notes.append(f"client errors (retried): {dict(w.rec.errors.most_common(8))}")
    return r
