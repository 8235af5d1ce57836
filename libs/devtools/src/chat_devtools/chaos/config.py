"""The knobs of one chaos run, and the environment its cluster runs with."""

from __future__ import annotations

from dataclasses import dataclass

from chat_devtools.testing import NO_RATE_LIMITS

# The services whose replicas are killed, in this order within a round. Search goes first:
# a killed search replica's unacknowledged events come back only after the index consumer's
# ack_wait, so the run gives that clock the most time to run out while the rest happens.
SERVICES = ("search", "gateway", "messages", "presence", "media")

HEARTBEAT_S = 1.0


def chaos_env(heartbeat_s: float = HEARTBEAT_S) -> dict[str, str]:
    """Service environment for a chaos cluster: heartbeats and presence reports every
    ``heartbeat_s`` (issue 17: 1 s), short presence grace, the send buckets off (each chaos
    user sends faster than a person, and how many fit a budget depends on the machine), no
    upload rate limit."""
    s = str(heartbeat_s)
    return {
        **NO_RATE_LIMITS,
        "GATEWAY_HEARTBEAT_S": s,
        "GATEWAY_PRESENCE_INTERVAL_S": s,
        "GATEWAY_PRESENCE_BATCH_S": "0.1",
        "PRESENCE_GATEWAY_INTERVAL_S": s,
        "PRESENCE_OFFLINE_GRACE_S": s,
        "PRESENCE_COALESCE_S": "0.1",
        "MEDIA_RATE_BURST": "0",
    }


@dataclass
class ChaosConfig:
    """One seeded run. Every wait is a deadline derived from a baseline measured in the run
    (``budget()``), never a fixed sleep; the only sleeps are the faults' outages and the
    users' think time, both part of the scenario."""

    seed: int = 1
    users: int = 6
    convs: int = 3
    # each round kills one replica of every service in SERVICES (a different replica per
    # round while there are any left), then NATS and PostgreSQL when ``infra``
    rounds: int = 1
    infra: bool = True
    outage_s: tuple[float, float] = (0.3, 1.5)  # how long a killed process stays down (seeded)
    think_s: tuple[float, float] = (0.05, 0.25)  # a user's pause between sends (seeded)
    upload_every: int = 6  # every Nth message of a user carries a fresh upload (0: none)
    search_every: int = 5  # every Nth message a user also searches (load; errors counted)
    chat_before_s: float = 2.0  # chatting before the first fault and after the last
    heartbeat_s: float = HEARTBEAT_S
    # the search index consumer's ack_wait: an event a killed replica (or a NATS crash) left
    # unacknowledged is delivered again only after it (chat_search.indexer.consumer_config);
    # the search deadline allows ``search_redeliveries`` of them in a row (one event can be
    # hit by the search replica's kill and then by the NATS crash)
    search_redelivery_s: float = 10.0
    search_redeliveries: int = 3
    # floors of the deadlines (seconds); each deadline is floor + slack x baseline
    floor_s: float = 30.0
    slack: float = 100.0

    def budget(self, baseline_s: float, extra_s: float = 0.0) -> float:
        """A deadline: generous on a loaded or slow machine, derived from the baseline."""
        return extra_s + self.floor_s + self.slack * baseline_s
