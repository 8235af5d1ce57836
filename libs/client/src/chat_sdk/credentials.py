"""Where the CLI keeps its session: ``$CHAT_CONFIG_DIR`` or ``$XDG_CONFIG_HOME/chat`` or
``~/.config/chat``, file ``credentials.json``, mode 0600 (directory 0700), written
atomically. It holds the gateway URL(s), the username and the newest token pair."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chat_sdk.models import Tokens

FILE_NAME = "credentials.json"


def config_dir() -> Path:
    if d := os.environ.get("CHAT_CONFIG_DIR"):
        return Path(d)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "chat"


def credentials_path() -> Path:
    return config_dir() / FILE_NAME


@dataclass
class Credentials:
    urls: list[str]
    username: str
    tokens: Tokens

    def to_json(self) -> dict[str, Any]:
        return {"urls": self.urls, "username": self.username, "tokens": self.tokens.model_dump(mode="json")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Credentials:
        return cls(list(data["urls"]), str(data["username"]), Tokens.model_validate(data["tokens"]))


def save(creds: Credentials, path: Path | None = None) -> Path:
    """Write ``creds`` with mode 0600 (atomically: a temporary file, then rename)."""
    path = path or credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when the temporary file existed with other bits
        os.write(fd, json.dumps(creds.to_json(), indent=2).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def load(path: Path | None = None) -> Credentials | None:
    path = path or credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return Credentials.from_json(data)


def remove(path: Path | None = None) -> bool:
    path = path or credentials_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
