"""``make run`` (``chat-run``): the whole system on embedded defaults comes up, serves the web
app at / and the API docs at /docs, answers the API, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from chat_devtools.ports import free_port
from chat_gateway.web import prepare


def test_chat_run_serves_the_app_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("<!doctype html><title>Chat</title><script>self.ok=1</script><h1>chat</h1>")
    prepare(out)
    port = free_port()
    env = {
        **os.environ,
        "CHAT_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_PORT": str(port),
        "GATEWAY_WEB_DIR": str(out),
        "CHAT_DEVTOOLS_FORKSERVER": "0",  # as a user runs it: each service with python -m
    }
    services = ("AUTH", "MESSAGES", "PRESENCE", "MEDIA", "SEARCH", "GATEWAY_METRICS", "CHAT_NATS", "CHAT_NATS_MONITOR")
    for name in services:
        env[f"{name}_PORT"] = str(free_port())
    exe = str(Path(sys.executable).with_name("chat-run"))
    proc = subprocess.Popen([exe], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not any("chat backend is up" in line for line in lines):  # every service ready
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "chat-run did not come up:\n" + "".join(lines)
            time.sleep(0.2)
        r = httpx.get(f"{base}/", timeout=5)
        assert (
            r.status_code == 200
            and "<h1>chat</h1>" in r.text
            and "script-src 'self' 'sha256-" in r.headers["content-security-policy"]
        )
        assert httpx.get(f"{base}/docs", timeout=5).status_code == 200
        account = {"username": "runner", "password": "a fine password"}
        r = httpx.post(f"{base}/v1/auth/register", json=account, timeout=10)
        assert r.status_code == 201, r.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    reader.join(10)
    if proc.stdout is not None:
        proc.stdout.close()
    output = "".join(lines)
    assert code == 0, output
    assert f"web app   http://127.0.0.1:{port}/" in output
