"""Build the web app (``web/``) when its sources changed, for ``make run`` and the browser tests.

``ensure_built(repo)`` returns the static export (``web/out``) to give the gateway as
``GATEWAY_WEB_DIR``: it hashes the sources (``web/`` without ``node_modules``, ``.next`` and
``out``, plus the client library ``libs/client-ts/src`` and both lockfiles) and rebuilds only
when the hash differs from the one stored with the last build: ``npm ci`` when the
dependencies changed, ``npm run build``, then ``python -m chat_gateway.web prepare`` (CSP
hashes, precompressed assets). Without npm it serves the last build, or nothing (with a
warning): the API works either way.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

SKIP = {"node_modules", ".next", "out", ".turbo", "test-results", "playwright-report"}
# written by the build itself: hashed, they would make the next look stale (a second build)
SKIP_FILES = {"next-env.d.ts"}
STAMP = ".source-hash"


class BuildFailed(RuntimeError):
    pass


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP and not d.startswith("."))
        for name in sorted(filenames):
            if name not in SKIP_FILES and not name.endswith(".tsbuildinfo"):
                yield Path(dirpath) / name


def source_hash(repo: Path) -> str:
    h = hashlib.sha256()
    roots = [repo / "web", repo / "libs" / "client-ts"]
    for root in roots:
        if not root.is_dir():
            continue
        for f in _files(root):
            h.update(f.relative_to(repo).as_posix().encode() + b"\0")
            h.update(f.read_bytes() + b"\0")
    return h.hexdigest()


def _deps_hash(web: Path) -> str:
    lock = web / "package-lock.json"
    return hashlib.sha256(lock.read_bytes() if lock.is_file() else b"").hexdigest()


def ensure_built(repo: Path, log: Callable[[str], None] = print, *, required: bool = False) -> Path | None:
    """The up-to-date export directory, or None when there is no web app to serve. With
    ``required`` (tests under CI) a missing npm or a failed build raises BuildFailed."""
    web = repo / "web"
    out = web / "out"
    if not (web / "package.json").is_file():
        return None
    wanted = source_hash(repo)
    stamp = out / STAMP

    def fresh() -> bool:
        return stamp.is_file() and stamp.read_text().strip() == wanted and (out / "index.html").is_file()

    if fresh():
        return out
    # One build at a time (make test starts one in the background; a test fixture that
    # asks meanwhile waits for it and then finds it fresh)
    lock_path = (
        Path(tempfile.gettempdir())
        / f"chat-web-build-{hashlib.sha256(str(web.resolve()).encode()).hexdigest()[:16]}.lock"
    )
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if fresh():
            return out
        return _build(repo, web, out, stamp, wanted, log, required)


def _build(
    repo: Path, web: Path, out: Path, stamp: Path, wanted: str, log: Callable[[str], None], required: bool
) -> Path | None:
    npm = shutil.which("npm")
    if npm is None:
        msg = "npm not found: cannot build the web app (install Node.js 20)"
        if required:
            raise BuildFailed(msg)
        log(f"{msg}; serving {'the last build' if (out / 'index.html').is_file() else 'the API only'}")
        return out if (out / "index.html").is_file() else None
    deps_stamp = web / "node_modules" / ".lock-hash"  # the same stamp as scripts/test.sh's
    deps = _deps_hash(web)
    try:
        if not deps_stamp.is_file() or deps_stamp.read_text().strip() != deps:
            log("installing the web app's dependencies (npm ci)")
            _run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], web)
            deps_stamp.write_text(deps)
        log("building the web app (npm run build)")
        _run([npm, "run", "build"], web)
        _run([sys.executable, "-m", "chat_gateway.web", "prepare", str(out)], repo)
    except BuildFailed:
        if required or not (out / "index.html").is_file():
            raise
        log("the web app failed to build; serving the last build")
        return out
    stamp.write_text(wanted)
    return out


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).splitlines()[-30:])
        raise BuildFailed(f"{' '.join(cmd[:3])} failed ({p.returncode}):\n{tail}")


def main() -> None:
    """``python -m chat_devtools.webapp [--required]``: build web/ when its sources changed
    (scripts/test.sh runs it in the background while the test servers install)."""
    required = "--required" in sys.argv[1:]
    try:
        out = ensure_built(Path.cwd(), required=required)
    except BuildFailed as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    print(out if out is not None else "(no web app)")


if __name__ == "__main__":
    main()
