"""A throwaway PostgreSQL server (Debian's binaries), as root or as a normal user.

``initdb`` and ``pg_ctl`` refuse to run as root, so when we are root they run as the
``postgres`` user via ``runuser`` and the base directory is handed to that user.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType

from chat_devtools import _proc
from chat_devtools.ports import LOOPBACK, free_port

# Settings for tests: durable commits (fsync on), enough connections for several
# services x pools x replicas, quiet logs.
TEST_SETTINGS: dict[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "log_min_error_statement": "error",
}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def find_pg_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<ver>/bin`` that has initdb (or PG_BIN_DIR)."""
    env = os.environ.get("PG_BIN_DIR")
    if env:
        return Path(env)
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not candidates:
        found = shutil.which("initdb")
        if found:
            return Path(found).parent
        raise FileNotFoundError(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): apt-get install -y postgresql"
        )

    def version(p: str) -> tuple[int, ...]:
        ver = Path(p).parent.parent.name
        return tuple(int(x) for x in re.findall(r"\d+", ver))

    return Path(max(candidates, key=version)).parent


def create_database_sync(base_url: str, name: str) -> None:
    """CREATE DATABASE ``name`` on the server at ``base_url`` (any scheme form, no db).

    Runs asyncpg on its own thread and loop, so it is safe to call from sync pytest
    fixtures even while an asyncio loop is current.
    """
    if not _IDENT.match(name):
        raise ValueError(f"invalid database name: {name!r}")
    dsn = asyncpg_dsn(base_url, "postgres")

    async def create() -> None:
        import asyncpg

        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create()).result()


@contextlib.asynccontextmanager
async def scratch_database(base_url: str, prefix: str, *, icu: bool = False) -> AsyncIterator[str]:
    """A fresh database on the server at ``base_url`` (``scheme://user@host:port``, no
    database), dropped (``WITH (FORCE)``) on exit; yields its URL in ``base_url``'s scheme.
    ``icu``: collated with ICU en-US instead of byte order."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    if not _IDENT.match(name):
        raise ValueError(f"invalid database name: {name!r}")
    admin = asyncpg_dsn(base_url, "postgres")
    clause = " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'" if icu else ""
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()
    try:
        yield f"{base_url.rstrip('/')}/{name}"
    finally:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def asyncpg_dsn(base_url: str, dbname: str) -> str:
    """``postgresql+asyncpg://u@h:p[/x]`` -> ``postgresql://u@h:p/dbname`` for asyncpg."""
    rest = base_url.split("://", 1)[1]
    hostpart = rest.split("/", 1)[0]
    return f"postgresql://{hostpart}/{dbname}"


class PostgresServer:
    """A PostgreSQL cluster in ``base_dir`` (a fresh temp dir by default) on 127.0.0.1."""

    def __init__(
        self,
        base_dir: Path | str | None = None,
        *,
        port: int | None = None,
        bin_dir: Path | str | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir else find_pg_bin()
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="chat-pg-")).resolve()
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.log_file = self.base_dir / "postgres.log"
        self.port_file = self.base_dir / "port"
        if port is None and self.port_file.exists():
            port = int(self.port_file.read_text().strip())
        self.port = port or free_port()
        self.settings = {**TEST_SETTINGS, **(settings or {})}
        self.as_postgres = os.geteuid() == 0

    # -- running the binaries ---------------------------------------------------------
    def _cmd(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / tool), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if self.as_postgres else cmd

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        res = subprocess.run(
            self._cmd(tool, *args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
        if res.returncode != 0:
            out = (res.stdout + res.stderr).decode("utf-8", "replace")
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({res.returncode}):\n{out}\n"
                f"--- {self.log_file}:\n{_proc.tail(self.log_file)}"
            )

    def _chown(self, *paths: Path) -> None:
        if not self.as_postgres:
            return
        pw = pwd.getpwnam("postgres")
        for p in paths:
            os.chown(p, pw.pw_uid, pw.pw_gid)

    # -- lifecycle --------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o700)
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.base_dir, self.socket_dir)
        self._run(
            "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--no-instructions",
        )  # fmt: skip
        conf = {
            **self.settings,
            "port": str(self.port),
            "listen_addresses": f"'{LOOPBACK}'",
            "unix_socket_directories": f"'{self.socket_dir}'",
        }
        with (self.data_dir / "postgresql.conf").open("a") as f:
            f.write("\n# chat_devtools\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        self.port_file.write_text(f"{self.port}\n")

    def start(self, timeout: float = 60) -> PostgresServer:
        if not self.initialized:
            self.init()
        if self.running():
            return self
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
            "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10,
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """``pg_ctl stop`` (fast: roll back open transactions, checkpoint, exit)."""
        if not self.running():
            return
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(timeout)),
            "stop", timeout=timeout + 10,
        )  # fmt: skip

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and _alive(pid)

    def kill(self, timeout: float = 30) -> None:
        """SIGKILL the postmaster and its children (a crash; the next start recovers)."""
        pid = self.postmaster_pid()
        if pid is None or not self.running():
            return
        children = _children(pid)
        for p in [pid, *children]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in [pid, *children]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres processes still alive after SIGKILL: {pid}")
            time.sleep(0.02)
        # The postmaster may linger as a zombie (its parent is not us), which would make
        # the next postmaster think the lock file is live: every process is gone, drop it.
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        for stale in self.socket_dir.glob(f".s.PGSQL.{self.port}*"):
            stale.unlink(missing_ok=True)

    def restart(self, timeout: float = 60) -> PostgresServer:
        self.stop()
        return self.start(timeout)

    def destroy(self) -> None:
        """Stop (or kill) and remove the base dir."""
        try:
            self.stop()
        except Exception:
            self.kill()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- databases --------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``postgresql+asyncpg://postgres@127.0.0.1:PORT`` (no database)."""
        return f"postgresql+asyncpg://postgres@{LOOPBACK}:{self.port}"

    def dsn(self, dbname: str) -> str:
        return f"{self.base_url}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create ``name``; returns its SQLAlchemy async URL."""
        create_database_sync(self.base_url, name)
        return self.dsn(name)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_dir:
            self.destroy()
        else:
            self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purposes
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out
