"""Thin adapter over nats-py: connect with sane reconnect settings, declare streams."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

log = logging.getLogger("chat.bus")


async def connect(
    url: str,
    name: str,
    *,
    on_state: Callable[[str], Awaitable[None]] | None = None,
    **kw: Any,
) -> NATS:
    async def _err(exc: Exception) -> None:
        log.warning("nats error", extra={"error": repr(exc)})

    async def _disc() -> None:
        log.warning("nats disconnected")
        if on_state:
            await on_state("disconnected")

    async def _reconn() -> None:
        log.info("nats reconnected")
        if on_state:
            await on_state("reconnected")

    return await nats.connect(
        servers=url.split(","),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        allow_reconnect=True,
        error_cb=_err,
        disconnected_cb=_disc,
        reconnected_cb=_reconn,
        pending_size=64 * 1024 * 1024,
        **kw,
    )


async def close(nc: NATS, timeout: float = 5.0) -> None:
    """Drain (flush what is pending) within ``timeout``, then close regardless."""
    try:
        await asyncio.wait_for(nc.drain(), timeout)
    except Exception:
        pass
    if not nc.is_closed:
        try:
            await nc.close()
        except Exception:
            pass


async def ensure_stream(js: JetStreamContext, cfg: StreamConfig) -> None:
    """Create the stream, or update it to ``cfg`` when it exists (idempotent)."""
    try:
        await js.stream_info(cfg.name or "")
    except NotFoundError:
        try:
            await js.add_stream(cfg)
            return
        except BadRequestError:
            # Lost a race with another replica creating it.
            pass
    try:
        await js.update_stream(cfg)
    except BadRequestError as exc:
        log.warning("stream update refused", extra={"stream": cfg.name, "error": str(exc)})
