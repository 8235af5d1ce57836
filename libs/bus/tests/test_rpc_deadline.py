"""RPC requests carry their caller's deadline (a server drops those already expired: the
caller gave up, nobody reads the answer) and request id (bound to the handler's log lines).
Real nats-server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nats
import orjson
from chat_bus.rpc import DEADLINE_HEADER, RpcClient, RpcContext, RpcServer, current_deadline
from chat_devtools.nats import NatsServer
from chat_proto.logctx import bind, bound
from pydantic import BaseModel


class Req(BaseModel):
    n: int = 0


async def test_expired_requests_are_dropped(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        seen: list[tuple[int, float | None]] = []
        ids: list[tuple[str | None, dict[str, Any]]] = []

        async def handler(req: Req, ctx: RpcContext) -> Any:
            seen.append((req.n, current_deadline.get()))
            ids.append((ctx.request_id, bound()))
            return {"n": req.n}

        rpc = RpcServer(nc, "q")
        rpc.add("svc.test.op", Req, handler)
        await rpc.start()
        try:
            late = await nc.publish(  # a caller that gave up a second ago
                "svc.test.op",
                orjson.dumps({"n": 1}),
                reply="nobody.listens",
                headers={DEADLINE_HEADER: f"{time.time() - 1:.3f}"},
            )
            assert late is None
            t0 = time.time()
            bind(request="req-1")  # the caller's request id travels with its calls
            assert await RpcClient(nc, 2.0).call("svc.test.op", {"n": 2}) == {"n": 2}
            await asyncio.sleep(0.05)
        finally:
            await rpc.stop()
            await nc.close()
    assert [n for n, _ in seen] == [2]
    assert ids[0][0] == "req-1" and ids[0][1]["request"] == "req-1" and ids[0][1]["rpc"] == "svc.test.op"
    deadline = seen[0][1]
    assert deadline is not None and t0 + 1.5 < deadline < t0 + 2.5


async def test_unexpected_errors_are_mapped_or_internal(tmp_path: Path) -> None:
    """A handler's unexpected exception answers ``internal``, unless the server's ``errors``
    hook maps it (the service skeleton maps a database that is restarting to ``unavailable``)."""
    from chat_proto.errors import ChatError, ErrorCode

    def errors(exc: Exception) -> ChatError | None:
        return ChatError(ErrorCode.UNAVAILABLE, "away") if isinstance(exc, ConnectionError) else None

    async def handler(req: Req, _ctx: RpcContext) -> Any:
        raise ConnectionError("gone") if req.n == 1 else ValueError("a bug")

    with NatsServer(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        rpc = RpcServer(nc, "q", errors=errors)
        rpc.add("svc.test.op", Req, handler)
        await rpc.start()
        client = RpcClient(nc, 5.0)
        try:
            codes = []
            for n in (1, 2):
                try:
                    await client.call("svc.test.op", {"n": n})
                except ChatError as e:
                    codes.append((e.code, e.message))
        finally:
            await rpc.stop()
            await nc.close()
    assert codes == [(ErrorCode.UNAVAILABLE, "away"), (ErrorCode.INTERNAL, ChatError(ErrorCode.INTERNAL).message)]


async def test_request_wire_passes_the_reply_on_unread(tmp_path: Path) -> None:
    """``request`` reads the reply into the op's model; ``request_wire`` returns it as the
    service sent it (the gateway passes a page of history on), and refuses a non-object."""
    from chat_proto.errors import ChatError, ErrorCode
    from chat_proto.ops import Op
    from chat_proto.replies import Events

    op = Op("svc.test.page", Req, Events)

    async def handler(req: Req, _ctx: RpcContext) -> Any:
        if req.n == 1:
            return [1, 2]
        event = {"conv": "c1", "seq": 7, "kind": "message", "sender": "u", "ts": "t", "extra": 1}
        return {"events": [event], "has_more": True}

    with NatsServer(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        rpc = RpcServer(nc, "q")
        rpc.add(op.subject, Req, handler)
        await rpc.start()
        client = RpcClient(nc, 5.0)
        try:
            raw = await client.request_wire(op, Req(n=0))
            typed = await client.request(op, Req(n=0))
            try:
                await client.request_wire(op, Req(n=1))
                bad = None
            except ChatError as e:
                bad = e.code
        finally:
            await rpc.stop()
            await nc.close()
    assert raw["events"][0]["extra"] == 1 and raw["has_more"] is True
    assert typed.events[0].seq == raw["events"][0]["seq"] == 7
    assert bad == ErrorCode.INTERNAL
