"""JetStream stream and consumer configurations, declared idempotently at start-up."""

from __future__ import annotations

from chat_proto import subjects
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

DUPLICATE_WINDOW_S = 120.0


def cmd_stream(replicas: int = 1, max_bytes: int = 1 << 30) -> StreamConfig:
    """Commands waiting for the messages service. Work queue: a command leaves when acked.

    Discard-new on a full stream: publishers get an error (and clients a retryable
    ``unavailable``) rather than commands being dropped silently.
    """
    return StreamConfig(
        name=subjects.CMD_STREAM,
        subjects=[subjects.CMD_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_bytes=max_bytes,
        max_msg_size=128 * 1024,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
    )


def evt_stream(replicas: int = 1, max_age_s: float = 7 * 24 * 3600, max_bytes: int = 10 << 30) -> StreamConfig:
    """Published conversation events, for derived consumers (search) and replay."""
    return StreamConfig(
        name=subjects.EVT_STREAM,
        subjects=[subjects.EVT_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age_s,
        max_bytes=max_bytes,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
    )


def messages_consumer(ack_wait_s: float = 30.0, max_ack_pending: int = 4096) -> ConsumerConfig:
    """The durable pull consumer shared by every messages replica.

    max_deliver is high on purpose: a transient outage (database down) is retried
    with backoff for hours rather than dropping an acknowledged-to-nobody command.
    """
    return ConsumerConfig(
        durable_name=subjects.MESSAGES_CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait_s,
        max_deliver=2000,
        max_ack_pending=max_ack_pending,
        filter_subject=subjects.CMD_SUBJECTS,
    )


def backoff_s(num_delivered: int) -> float:
    """Redelivery delay for a transient failure: 0.1 s doubling to 30 s."""
    return float(min(30.0, 0.1 * (2 ** min(num_delivered, 9))))


def times_delivered(msg: Msg) -> int:
    """``msg.metadata.num_delivered``, read from the ack subject without building the whole
    metadata (a timestamp, two dataclasses): the write path asks it of every command.
    A hint only: after a NATS crash the consumer's delivery state comes back older, and a
    message delivered before is counted 1 again.
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>``;
    any other form (a domain, an account hash) goes through nats-py."""
    tokens = msg.reply.split(".") if msg.reply else []
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK" and tokens[4].isdigit():
        return int(tokens[4])
    return msg.metadata.num_delivered
