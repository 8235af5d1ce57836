"""The gateway's presence reports: every connect reaches the presence replicas in a delta."""

from __future__ import annotations

import asyncio

from chat_gateway.presence_reporter import PresenceReporter
from chat_proto.presence import GatewayReport


class RecordingBus:
    def __init__(self) -> None:
        self.reports: list[GatewayReport] = []

    async def publish(self, subject: str, data: bytes) -> None:
        self.reports.append(GatewayReport.model_validate_json(data))

    async def flush(self, timeout: float = 0) -> None:
        return None


async def wait_for(cond, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_a_connect_just_before_a_full_report_still_goes_out_as_a_delta() -> None:
    # The batch window is longer than the interval, so the full report is due before the
    # delta's batch ends: the connect must still be announced by a delta (a warming-up
    # replica would take a user first seen in a full report as already online).
    bus, users = RecordingBus(), {}
    rep = PresenceReporter(bus, users, "gw-1", interval_s=0.2, batch_s=10.0)  # type: ignore[arg-type]
    await rep.start()
    try:
        await wait_for(lambda: any(r.kind == "full" for r in bus.reports))
        users["bob"] = object()
        rep.changed("bob")
        await wait_for(lambda: any(r.kind == "full" and "bob" in r.users for r in bus.reports))
        kinds = [(r.kind, tuple(r.users)) for r in bus.reports]
        first_delta = kinds.index(("delta", ("bob",)))
        first_full = next(i for i, (k, u) in enumerate(kinds) if k == "full" and "bob" in u)
        assert first_delta < first_full, kinds
    finally:
        await rep.stop()
    assert bus.reports[-1].kind == "bye"


async def test_a_connection_that_comes_and_goes_within_the_batch_makes_no_report() -> None:
    bus, users = RecordingBus(), {}
    rep = PresenceReporter(bus, users, "gw-1", interval_s=60.0, batch_s=0.05)  # type: ignore[arg-type]
    await rep.start()
    try:
        await wait_for(lambda: len(bus.reports) == 1)
        users["bob"] = object()
        rep.changed("bob")
        del users["bob"]
        rep.changed("bob")
        users["carol"] = object()
        rep.changed("carol")
        await wait_for(lambda: len(bus.reports) == 2)
        assert bus.reports[1].kind == "delta"
        assert bus.reports[1].users == ["carol"] and bus.reports[1].gone == []
    finally:
        await rep.stop()
