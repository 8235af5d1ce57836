"""Thin adapter over nats-py: connect with sane reconnect settings, declare streams."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
from chat_proto.nats_permissions import inbox_prefix
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

log = logging.getLogger("chat.bus")


@dataclass(frozen=True)
class NatsAuth:
    """How one service connects to NATS: as its own user (chat_proto.nats_permissions), its
    replies on its own inbox prefix; TLS for a ``tls://`` URL, against ``tls_ca_file``."""

    service: str
    user: str = ""
    password: str = ""
    tls_ca_file: str = ""

    def connect_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"inbox_prefix": inbox_prefix(self.service)}
        if self.user:
            opts |= {"user": self.user, "password": self.password}
        if self.tls_ca_file:
            opts["tls"] = ssl.create_default_context(cafile=self.tls_ca_file)
        return opts


def inbox(nc: NATS, name: str) -> str:
    """A subject under this connection's inbox prefix (the only inbox it may subscribe to)."""
    return f"{bytes(nc._inbox_prefix).decode()}.{name}"


async def connect(
    url: str,
    name: str,
    *,
    auth: NatsAuth | None = None,
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
        **(auth.connect_options() if auth is not None else {}),
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
