"""Command line for a throwaway PostgreSQL (used by scripts/test.sh and benchmarks).

    python -m chat_devtools.pgserver start --base-dir DIR [--url-file F]   # prints the base URL
    python -m chat_devtools.pgserver stop  --base-dir DIR [--keep]         # stops, removes DIR
    python -m chat_devtools.pgserver serve [--base-dir DIR] [--url-file F] # foreground until signal

The printed URL is ``postgresql+asyncpg://postgres@127.0.0.1:PORT`` (no database name).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from pathlib import Path

from chat_devtools.postgres import PostgresServer


def _announce(pg: PostgresServer, url_file: str | None) -> None:
    if url_file:
        tmp = Path(url_file + ".tmp")
        tmp.write_text(pg.base_url + "\n")
        tmp.replace(url_file)
    print(pg.base_url, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chat_devtools.pgserver")
    ap.add_argument("action", choices=["start", "stop", "serve"])
    ap.add_argument("--base-dir", help="cluster directory (created; must be new for start)")
    ap.add_argument("--url-file", help="also write the base URL to this file")
    ap.add_argument("--port", type=int)
    ap.add_argument("--keep", action="store_true", help="stop: keep the directory")
    args = ap.parse_args(argv)

    if args.action == "stop":
        if not args.base_dir:
            ap.error("stop needs --base-dir")
        base = Path(args.base_dir)
        if (base / "data" / "PG_VERSION").exists():
            pg = PostgresServer(base)
            try:
                pg.stop()
            except Exception as e:  # still remove what we can
                print(f"pg_ctl stop failed ({e}); killing", file=sys.stderr)
                pg.kill()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        return 0

    pg = PostgresServer(args.base_dir, port=args.port)
    pg.start()
    _announce(pg, args.url_file)
    if args.action == "start":
        return 0

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        if args.base_dir is None:
            pg.destroy()
        else:
            pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
