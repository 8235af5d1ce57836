"""Free TCP ports on the loopback interface.

Ports are picked at random *below* the kernel's ephemeral range when it leaves room: a
service binds its port a moment after it was chosen, and in the meantime no outgoing
connection can be given that port (outgoing connections only get ephemeral ones). Random
picks also keep several test processes (pytest-xdist workers) from choosing the same port
in the same moment, as the kernel's "bind to 0" would more often.
"""

from __future__ import annotations

import random
import secrets
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
_LOW = 10000
_rng = random.Random(secrets.randbits(64))  # independent of a test's random.seed()


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


def free_port(host: str = LOOPBACK, *, avoid: frozenset[int] | set[int] = frozenset()) -> int:
    """A port that is free on ``host`` right now (racy by nature, but see the module doc)."""
    hi = ephemeral_low() - 1
    if hi - _LOW >= 1000:
        for _ in range(200):
            p = _rng.randint(_LOW, hi)
            if p not in avoid and port_is_free(p, host):
                return p
    for _ in range(1000):
        p = _kernel_port(host)
        if p not in avoid:
            return p
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
