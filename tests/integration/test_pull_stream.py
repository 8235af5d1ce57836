"""The continuous pull (chat_bus.pull.PullStream; the messages and media services) on a real NATS:
commands keep flowing across idle periods longer than a pull request's lifetime, across
bursts larger than one request, and after the NATS server is killed and restarted."""

from __future__ import annotations

import asyncio

import pytest
from chat_bus import bus, streams
from chat_bus.pull import PullStream
from chat_devtools.nats import NatsServer
from chat_proto import subjects
from nats.aio.msg import Msg


async def _publish(js: object, first: int, n: int) -> None:
    for i in range(first, first + n):
        await js.publish(subjects.cmd_send("c1"), str(i).encode())  # type: ignore[attr-defined]


async def _collect(received: list[int], want: int, timeout: float) -> None:
    async def until() -> None:
        while len(set(received)) < want:  # noqa: ASYNC110 - polling a plain list
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until(), timeout)


@pytest.mark.timeout(90)
async def test_pull_stream_survives_idle_bursts_and_nats_crash(nats: NatsServer) -> None:
    nc = await bus.connect(nats.url, "pull-test")
    js = nc.jetstream()
    await js.add_stream(streams.cmd_stream())
    await js.add_consumer(subjects.CMD_STREAM, streams.messages_consumer(ack_wait_s=2.0))
    received: list[int] = []
    acks: list[asyncio.Task[None]] = []

    def sink(m: Msg) -> None:
        received.append(int(m.data))
        acks.append(asyncio.ensure_future(m.ack()))

    # Small requests that expire quickly, so renewal and top-up both happen in the test.
    pull = PullStream(nc, subjects.CMD_STREAM, subjects.MESSAGES_CONSUMER, sink, batch=8, expires_s=1.0)
    await pull.start()
    try:
        await _publish(js, 0, 5)
        await _collect(received, 5, 5)
        await asyncio.sleep(2.5)  # longer than two request lifetimes
        await _publish(js, 5, 100)  # many times one request's batch
        await _collect(received, 105, 10)
        await asyncio.gather(*acks)
        await nc.flush()

        nats.kill()
        nats.start()
        await asyncio.sleep(1.0)  # the client reconnects (0.5 s backoff)
        await _publish(js, 105, 20)
        await _collect(received, 125, 20)
        await asyncio.gather(*acks)
        await asyncio.sleep(3)  # anything unacked would be redelivered by now
    finally:
        await pull.stop()
        await nc.close()
    # Nothing missing, first deliveries in publish order. A SIGKILLed nats-server may lose
    # acks it had not written yet, so a message may come again after the restart.
    assert set(received) == set(range(125))
    firsts = list(dict.fromkeys(received))
    assert firsts == sorted(firsts)
