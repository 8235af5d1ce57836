"""A chat service (``python -m <module>``) as a supervised child process."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from chat_devtools import _proc, forkserver
from chat_devtools.ports import LOOPBACK


class ServiceFailed(RuntimeError):
    """The service died or never became ready; the message carries its log tail."""


class ServiceProcess:
    """``sys.executable -m module`` with ``env`` on top of ``os.environ``.

    Output (stdout + stderr) is appended to ``log_file`` across restarts. ``start()``
    returns once ``GET /readyz`` answers 200.
    """

    def __init__(
        self,
        name: str,
        module: str,
        env: Mapping[str, str],
        port: int,
        *,
        host: str = LOOPBACK,
        log_file: Path | str | None = None,
        ready_path: str = "/readyz",
        ready_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.module = module
        self.env = dict(env)
        self.port = port
        self.host = host
        if log_file is None:
            log_file = Path(tempfile.gettempdir()) / f"chat-{name}-{port}.log"
        self.log_file = Path(log_file)
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | forkserver.ForkedProcess | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where ``/metrics`` is served: the gateway's operations port, else the service port."""
        port = self.env.get("GATEWAY_METRICS_PORT")
        return f"http://{self.host}:{port}" if port else self.base_url

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return _proc.tail(self.log_file, lines)

    # -- lifecycle --------------------------------------------------------------------
    def spawn(self) -> None:
        """Start the process without waiting for readiness."""
        if self.running():
            return
        if importlib.util.find_spec(self.module) is None:
            raise ServiceFailed(f"{self.name}: module {self.module!r} is not installed")
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            if forkserver.enabled():  # tests: forked from a server that imported it already
                self.proc = forkserver.ForkedProcess(self.module, env, self.log_file)
                return
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which orders shutdown
            )

    def wait_ready(self, timeout: float | None = None) -> None:
        timeout = self.ready_timeout if timeout is None else timeout
        proc = self.proc
        if proc is None:
            raise ServiceFailed(f"{self.name} was not started")
        url = self.base_url + self.ready_path

        def ready() -> bool:
            if proc.poll() is not None:
                raise ServiceFailed(
                    f"{self.name} exited with {proc.returncode} before ready (log {self.log_file}):\n{self.log_tail()}"
                )
            return _proc.http_status(url, timeout=1.0) == 200

        if not _proc.wait_for(ready, timeout, interval=0.05):
            _proc.kill(proc)
            raise ServiceFailed(
                f"{self.name} not ready at {url} within {timeout}s (log {self.log_file}):\n{self.log_tail()}"
            )

    def start(self, timeout: float | None = None) -> ServiceProcess:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful shutdown), SIGKILL after ``timeout``. Returns the exit code."""
        if self.proc is None:
            return None
        return _proc.terminate(self.proc, timeout)

    def kill(self) -> int | None:
        """SIGKILL: a crash."""
        if self.proc is None:
            return None
        return _proc.kill(self.proc)

    def restart(self, timeout: float | None = None) -> ServiceProcess:
        self.stop()
        return self.start(timeout)

    def __repr__(self) -> str:
        state = "running" if self.running() else f"exited {self.returncode}"
        return f"<ServiceProcess {self.name} {self.base_url} pid={self.pid} {state}>"
