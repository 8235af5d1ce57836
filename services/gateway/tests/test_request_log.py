"""``main.RequestLog``: every HTTP answer carries its X-Request-Id and is measured by route
and status; while draining, /v1 answers 503 at once (and nothing else changes)."""

from __future__ import annotations

import httpx
from chat_gateway.drain import Drain
from chat_gateway.main import HTTP_LATENCY, RequestLog
from chat_proto.logctx import bound
from fastapi import FastAPI


def app_with(drain: Drain) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/thing/{x}")
    async def thing(x: str) -> dict[str, str | None]:
        return {"x": x, "request": bound().get("request")}

    @app.get("/readyz")
    async def ready() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(RequestLog, drain=drain)
    return app


def _samples(route: str, status: str) -> float:
    for metric in HTTP_LATENCY.collect():
        for s in metric.samples:
            if s.name.endswith("_count") and s.labels == {"method": "GET", "route": route, "status": status}:
                return s.value
    return 0.0


async def test_request_id_metrics_and_drain() -> None:
    drain = Drain(1.0, 1.0)
    transport = httpx.ASGITransport(app=app_with(drain))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        before = _samples("/v1/thing/{x}", "200")
        r = await http.get("/v1/thing/a")
        assert r.status_code == 200 and len(r.headers["x-request-id"]) == 16
        assert r.json() == {"x": "a", "request": r.headers["x-request-id"]}  # bound while handled
        assert _samples("/v1/thing/{x}", "200") == before + 1
        missing = _samples("unmatched", "404")
        assert (await http.get("/nothing")).status_code == 404
        assert _samples("unmatched", "404") == missing + 1
        drain.begin()
        r = await http.get("/v1/thing/a")
        assert r.status_code == 503 and r.json()["code"] == "unavailable" and r.headers["retry-after"] == "1"
        assert (await http.get("/readyz")).status_code == 200  # only /v1 is refused
