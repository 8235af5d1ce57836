"""Service processes forked from a server that has already imported them (tests).

Starting ``python -m chat_<service>`` costs about a second of CPU before the service runs a
line of its own: the interpreter and the imports (FastAPI, pydantic, SQLAlchemy, nats-py …).
The integration suite starts several hundred service processes, so that was half of its CPU.
With ``CHAT_DEVTOOLS_FORKSERVER=1`` (set by the integration tests' conftest) a
:class:`~chat_devtools.services.ServiceProcess` is instead forked from the standard library's
``multiprocessing`` fork server, which imports every service once (``set_forkserver_preload``).
Each child is still its own process with its own pid, session, environment and log file,
running the same ``__main__`` under uvicorn; SIGTERM, SIGKILL and exit codes work as for
``subprocess.Popen`` (:class:`ForkedProcess` has the part of its interface the tools use).
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
from collections.abc import Mapping
from multiprocessing.context import ForkServerContext
from pathlib import Path

ENV = "CHAT_DEVTOOLS_FORKSERVER"
PRELOAD = [
    "chat_devtools.forkserver",
    "uvicorn",
    "chat_auth.main",
    "chat_messages.main",
    "chat_presence.main",
    "chat_media.main",
    "chat_search.main",
    "chat_gateway.main",
]

_ctx: ForkServerContext | None = None


def enabled() -> bool:
    return os.environ.get(ENV) == "1" and sys.platform.startswith("linux")


def _context() -> ForkServerContext:
    global _ctx
    if _ctx is None:
        ctx = multiprocessing.get_context("forkserver")
        assert isinstance(ctx, ForkServerContext)
        ctx.set_forkserver_preload(PRELOAD)  # a module that fails to import is skipped
        _ctx = ctx
    return _ctx


def _run(module: str, env: dict[str, str], log_file: str, cwd: str) -> None:
    """The child: its own session, the caller's environment, output to the log, then the
    service's ``__main__`` exactly as ``python -m`` runs it."""
    os.setsid()  # as start_new_session: a Ctrl-C of the terminal reaches the supervisor only
    fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


class ForkedProcess:
    """A forked service process with the part of ``subprocess.Popen``'s interface in use."""

    def __init__(self, module: str, env: Mapping[str, str], log_file: Path) -> None:
        self.args = [module]
        self._p = _context().Process(
            target=_run, args=(module, dict(env), str(log_file), os.getcwd()), name=module, daemon=True
        )
        self._p.start()
        assert self._p.pid is not None
        self.pid: int = self._p.pid

    @property
    def returncode(self) -> int | None:
        return self._p.exitcode

    def poll(self) -> int | None:
        return self._p.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._p.join(timeout)
        code = self._p.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self._p.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
