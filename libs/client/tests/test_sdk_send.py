"""``ChatClient.send()`` retry rules, driven by scripted answers of the link (the gateway
does not emit ``rate_limited`` for sends yet; dropped connections and ``unavailable`` are
also exercised against real gateways in tests/integration/test_sdk.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from chat_sdk import ChatClient, ClientOptions, Forbidden, SendTimeout, Unauthorized
from chat_sdk.link import ConnectionLost
from chat_sdk.models import Tokens
from chat_sdk.rest import Endpoints, Rest

Answer = dict[str, Any] | BaseException


class ScriptedLink:
    """Answers each request with the next scripted reply (a frame, or an exception)."""

    def __init__(self, script: list[Answer]) -> None:
        self.script = list(script)
        self.sent: list[dict[str, Any]] = []
        self.fatal: BaseException | None = None

    async def wait_ready(self, timeout: float | None = None) -> None:
        if self.fatal is not None:
            raise self.fatal

    async def request(self, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.sent.append(frame)
        nxt = self.script.pop(0) if self.script else TimeoutError()
        if isinstance(nxt, BaseException):
            if isinstance(nxt, TimeoutError):
                await asyncio.sleep(min(timeout, 0.05))
            raise nxt
        return {**nxt, "conv": frame["conv"], "client_msg_id": frame["client_msg_id"]}


@pytest.fixture
async def client() -> AsyncIterator[ChatClient]:
    rest = Rest(Endpoints("http://127.0.0.1:9"))
    tokens = Tokens(access_token="a", refresh_token="r", expires_in=900)  # noqa: S106
    c = ChatClient(rest, tokens, ClientOptions(backoff_base_s=0.01, backoff_cap_s=0.05, ack_timeout_s=0.2))
    yield c
    await rest.aclose()


def script(c: ChatClient, answers: list[Answer]) -> ScriptedLink:
    link = ScriptedLink(answers)
    c._link = link  # type: ignore[assignment]
    return link


ACK = {"type": "ack", "seq": 42, "ts": "2026-01-01T00:00:00.000Z"}


def err(code: str, **kw: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": code, **kw}


async def test_retries_keep_the_same_client_msg_id_until_acked(client: ChatClient) -> None:
    link = script(
        client,
        [ConnectionLost("drop"), err("unavailable"), TimeoutError(), err("rate_limited", retry_after_ms=150), ACK],
    )
    t0 = time.monotonic()
    res = await client.send("c1", "hi")
    assert res.seq == 42 and res.conv == "c1"
    assert len(link.sent) == 5
    assert len({f["client_msg_id"] for f in link.sent}) == 1 == len({res.client_msg_id})
    assert time.monotonic() - t0 >= 0.15, "waited retry_after_ms before resending"
    assert client.send_retries == 4


async def test_given_client_msg_id_is_used(client: ChatClient) -> None:
    link = script(client, [ACK])
    res = await client.send("c1", "hi", client_msg_id="mine-1", reply_to=3)
    assert res.client_msg_id == "mine-1"
    assert link.sent == [{"type": "send", "conv": "c1", "client_msg_id": "mine-1", "body": "hi", "reply_to": 3}]


async def test_other_refusals_raise_their_typed_error_at_once(client: ChatClient) -> None:
    link = script(client, [err("forbidden"), ACK])
    with pytest.raises(Forbidden):
        await client.send("c1", "hi")
    assert len(link.sent) == 1


async def test_deadline_ends_the_retries(client: ChatClient) -> None:
    script(client, [err("unavailable")] * 1000)
    with pytest.raises(SendTimeout) as info:
        await client.send("c1", "hi", client_msg_id="k", deadline_s=0.3)
    assert info.value.client_msg_id == "k"


async def test_session_over_is_raised_not_retried(client: ChatClient) -> None:
    link = script(client, [ACK])
    link.fatal = Unauthorized("session over")
    with pytest.raises(Unauthorized):
        await client.send("c1", "hi")
    assert link.sent == []


class DeadButReadyLink(ScriptedLink):
    """A link whose socket died but whose reader has not run yet: ``wait_ready`` returns at
    once and ``request`` fails at once, without ever suspending. Only once the event loop
    runs other tasks (the reader) does the link come back."""

    def __init__(self) -> None:
        super().__init__([])
        self.healed = False

    async def request(self, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.sent.append(frame)
        if not self.healed:
            raise ConnectionLost("closed")
        return {**ACK, "conv": frame["conv"], "client_msg_id": frame["client_msg_id"]}


async def test_a_dead_connection_does_not_starve_the_event_loop(client: ChatClient) -> None:
    link = DeadButReadyLink()
    client._link = link  # type: ignore[assignment]

    async def reader() -> None:  # what the link's reader task would do: notice, reconnect
        link.healed = True

    asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(reader()))
    res = await asyncio.wait_for(client.send("c1", "hi", deadline_s=5), 5)
    assert res.seq == 42
    assert len(link.sent) < 100, f"{len(link.sent)} attempts: send() retried without yielding"
