"""The messages service's event publisher on a real NATS: a batch counts as published only
when JetStream stored every event of it (a PubAck each, a re-publish answered as a
duplicate). A reply that is not a PubAck, such as the empty 503 status NATS sends when no
stream listens on the subject, fails the batch: the consumer then redelivers the commands
instead of acking them with their events missing from the stream."""

from __future__ import annotations

import pytest
from chat_bus import bus, streams
from chat_devtools.nats import NatsServer
from chat_messages.bus_adapters import NatsPublisher
from chat_proto import subjects
from chat_proto.events import Event

pytestmark = pytest.mark.timeout(60)


def _events(conv: str, seqs: range) -> list[Event]:
    return [Event(conv=conv, seq=s, kind="message", sender="u1", ts="2026-01-01T00:00:00Z", body=f"m{s}") for s in seqs]


async def test_published_only_when_stored_and_a_no_responders_reply_fails(nats: NatsServer) -> None:
    nc = await bus.connect(nats.url, "publisher-test")
    try:
        pub = NatsPublisher(nc, ack_timeout_s=5.0)
        await pub.start()
        # no stream yet: NATS answers each publish with an empty 503 status
        with pytest.raises(RuntimeError, match="did not store"):
            await pub.publish_events(_events("c1", range(1, 4)))
        js = nc.jetstream()
        await js.add_stream(streams.evt_stream())
        await pub.publish_events(_events("c1", range(1, 4)))
        await pub.publish_events(_events("c1", range(2, 5)))  # 2 and 3 again: duplicates, 4 new
        info = await js.stream_info(subjects.EVT_STREAM)
        assert info.state.messages == 4
    finally:
        await nc.close()
