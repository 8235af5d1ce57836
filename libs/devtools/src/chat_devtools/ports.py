"""Free TCP ports on the loopback interface.

Ports are picked at random *below* the kernel's ephemeral range when it leaves room: a
service binds its port a moment after it was chosen, and in the meantime no outgoing
connection can be given that port (outgoing connections only get ephemeral ones). Random
picks also keep several test processes (pytest-xdist workers) from choosing the same port
in the same moment, as the kernel's "bind to 0" would more often.

Two more rules make a clash impossible rather than unlikely:

- a process never hands out the same port twice in a row of :data:`_REMEMBERED` picks: the
  services of one cluster are given their ports before any of them binds, so a port that
  is still free because its owner has not bound it yet is not given to a second service;
- each pytest-xdist worker picks from its own slice of the range (``PYTEST_XDIST_WORKER``
  ``gwN`` of ``PYTEST_XDIST_WORKER_COUNT``), so two workers never pick the same port.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import socket
import threading
from collections import deque
from pathlib import Path

LOOPBACK = "127.0.0.1"
_LOW = 10000
_REMEMBERED = 2048
_rng = random.Random(secrets.randbits(64))  # independent of a test's random.seed()
_given: deque[int] = deque(maxlen=_REMEMBERED)
_given_set: set[int] = set()
_lock = threading.Lock()


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 when it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _kernel_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def worker_slice(low: int, high: int, env: dict[str, str] | os._Environ[str] = os.environ) -> tuple[int, int]:
    """This process's part ``[lo, hi]`` of the ports ``[low, high]``: all of it, or the
    pytest-xdist worker's own slice when the slices leave at least 1,000 ports each."""
    m = re.fullmatch(r"gw(\d+)", env.get("PYTEST_XDIST_WORKER", ""))
    try:
        count = int(env.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        count = 1
    if m is None or count <= 1:
        return low, high
    width = (high - low + 1) // count
    if width < 1000:
        return low, high
    index = int(m.group(1)) % count
    return low + index * width, low + (index + 1) * width - 1


def _remember(port: int) -> int:
    if len(_given) == _given.maxlen:
        _given_set.discard(_given[0])
    _given.append(port)
    _given_set.add(port)
    return port


def free_port(host: str = LOOPBACK, *, avoid: frozenset[int] | set[int] = frozenset()) -> int:
    """A port that is free on ``host`` right now and that this process has not handed out
    recently (racy only against other programs; see the module doc)."""
    hi = ephemeral_low() - 1
    with _lock:
        if hi - _LOW >= 1000:
            lo, top = worker_slice(_LOW, hi)
            for _ in range(500):
                p = _rng.randint(lo, top)
                if p not in avoid and p not in _given_set and port_is_free(p, host):
                    return _remember(p)
        for _ in range(1000):
            p = _kernel_port(host)
            if p not in avoid and p not in _given_set:
                return _remember(p)
    raise RuntimeError(f"could not find a free port on {host}")


def free_ports(n: int, host: str = LOOPBACK, *, avoid: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """``n`` distinct free ports on ``host``."""
    chosen: list[int] = []
    while len(chosen) < n:
        chosen.append(free_port(host, avoid={*avoid, *chosen}))
    return chosen


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on ``host:port`` and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def preferred_port(port: int, host: str = LOOPBACK) -> int:
    """``port`` when it is free, else any free port."""
    return port if port_is_free(port, host) else free_port(host)
