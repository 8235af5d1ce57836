"""NATS credentials for one chat system (a ``make run``, a test cluster, a benchmark): one
NATS account with a user per service and an ``ops`` user, passwords generated here. The
permissions are production's (``chat_proto.nats_permissions``), unchanged.

Several systems can share one NATS server, each in its own account: accounts isolate
subjects, so one system's gateway cannot see another's traffic.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from chat_bus.bus import NatsAuth
from chat_proto.nats_permissions import OPS, SERVICES, render_account
from nats.aio.client import Client as NATS


@dataclass(frozen=True)
class ChatAccount:
    name: str
    users: dict[str, tuple[str, str]]  # service (or "ops") -> (user, password)

    @classmethod
    def generate(cls, name: str = "CHAT") -> ChatAccount:
        tag = name.lower()
        return cls(name, {svc: (f"{tag}-{svc}", secrets.token_urlsafe(24)) for svc in (*SERVICES, OPS)})

    def auth(self, service: str) -> NatsAuth:
        user, password = self.users[service]
        return NatsAuth(service if service != OPS else "ops", user, password)

    def service_env(self, service: str, prefix: str) -> dict[str, str]:
        """``<PREFIX>NATS_USER`` / ``<PREFIX>NATS_PASSWORD`` of one service."""
        user, password = self.users[service]
        return {f"{prefix}NATS_USER": user, f"{prefix}NATS_PASSWORD": password}

    def config(self) -> str:
        return render_account(self.name, self.users)

    async def connect(self, url: str, service: str = OPS, **kw: Any) -> NATS:
        """A nats-py connection as ``service``'s user (tests, tools)."""
        return await nats.connect(url, name=f"{self.name}-{service}", **self.auth(service).connect_options(), **kw)

    # -- persistence (make run keeps its credentials across restarts) --------------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"name": self.name, "users": self.users}, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ChatAccount:
        raw = json.loads(path.read_text())
        return cls(raw["name"], {k: (v[0], v[1]) for k, v in raw["users"].items()})

    @classmethod
    def load_or_create(cls, path: Path, name: str = "CHAT") -> ChatAccount:
        """The saved account, with users for services added since it was saved."""
        if not path.exists():
            account = cls.generate(name)
            account.save(path)
            return account
        account = cls.load(path)
        missing = [svc for svc in (*SERVICES, OPS) if svc not in account.users]
        if missing:
            tag = account.name.lower()
            account.users.update({svc: (f"{tag}-{svc}", secrets.token_urlsafe(24)) for svc in missing})
            account.save(path)
        return account
