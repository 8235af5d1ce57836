"""The gateway's operations port (``GATEWAY_METRICS_PORT``, default 9464): ``/metrics`` is
served only here, not on the public port (where it is 404), with ``/healthz`` and
``/readyz`` (which stay on the public port too). Point Prometheus and the probes of your
orchestrator here; keep it off the public network.

A second uvicorn server in the gateway's own event loop, started and stopped with the
application's lifespan; the public server keeps the process's signal handling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from chat_common.app import ReadyCheck, install_ops_routes
from chat_common.runtime_metrics import LoopLagMonitor
from fastapi import FastAPI


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the public server handles SIGTERM (drain) for the whole process


class OpsPort:
    def __init__(self, host: str, port: int, ready: ReadyCheck, state_of: FastAPI) -> None:
        app = FastAPI(title="chat gateway operations", docs_url=None, redoc_url=None, openapi_url=None)
        app.state = state_of.state  # the ready check reads the public app's state
        install_ops_routes(app, ready)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off", access_log=False)
        self.server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None
        self.loop_lag = LoopLagMonitor()  # chat_event_loop_lag_seconds, like every service

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(), name="ops-port")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it (the port is taken, …)
                raise RuntimeError("the operations port did not start")
            await asyncio.sleep(0.01)
        self.loop_lag.start()

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.wait([self._task], timeout=5)
        await self.loop_lag.stop()
