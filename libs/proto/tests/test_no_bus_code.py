"""chat_proto is the clients' package too: importing any of it pulls in no NATS code."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import chat_proto


def test_every_module_of_chat_proto_imports_without_nats() -> None:
    modules = [f"chat_proto.{m.name}" for m in pkgutil.iter_modules(chat_proto.__path__)]
    assert "chat_proto.ops" in modules and "chat_proto.events" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'nats' or m.startswith('nats.') or m.startswith('chat_bus'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"chat_proto pulled in {out.stdout.strip()}"
