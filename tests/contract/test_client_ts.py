"""The TypeScript client (libs/client-ts): its Vitest suite (reconnect storm on a fake clock,
ordering, outbox, token refresh) and its strict type check, run as part of `make test`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "libs" / "client-ts"


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None or not (PKG / "node_modules").is_dir():
        msg = f"npm or {PKG}/node_modules missing (scripts/test.sh runs npm ci there)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    assert npm is not None
    return npm


@pytest.mark.parametrize("script", ["test", "typecheck"])
def test_client_ts(script: str) -> None:
    p = subprocess.run(
        [_npm(), "run", "--silent", script], cwd=PKG, capture_output=True, text=True, timeout=600, check=False
    )
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
