"""Free ports for test servers: below the ephemeral range, distinct, bindable."""

from __future__ import annotations

import socket

from chat_devtools.ports import LOOPBACK, ephemeral_low, free_port, free_ports, port_is_free, worker_slice


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    low = ephemeral_low()
    if low - 1 - 10000 >= 1000:  # the kernel leaves room below its range (Linux: 32768)
        assert all(10000 <= p < low for p in ports), ports
    for p in ports:  # as the servers bind (SO_REUSEADDR: a port in TIME_WAIT is free to them)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((LOOPBACK, p))


def test_a_port_in_use_is_not_free_and_never_picked() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        s.listen()
        taken = s.getsockname()[1]
        assert not port_is_free(taken)
        assert free_port(avoid={taken}) != taken
        assert taken not in free_ports(5, avoid={taken})


def test_a_port_is_not_handed_out_twice_before_it_is_bound() -> None:
    """The services of a cluster get their ports before any binds: a port that is still free
    only because its owner has not bound it yet must not go to a second service."""
    picked = [free_port() for _ in range(300)]
    assert len(set(picked)) == len(picked)


def test_xdist_workers_pick_from_disjoint_slices() -> None:
    env = {"PYTEST_XDIST_WORKER_COUNT": "2"}
    a = worker_slice(10000, 32767, {**env, "PYTEST_XDIST_WORKER": "gw0"})
    b = worker_slice(10000, 32767, {**env, "PYTEST_XDIST_WORKER": "gw1"})
    assert a[0] == 10000 and b[1] <= 32767
    assert a[1] < b[0]
    assert b[1] - b[0] >= 1000
    assert worker_slice(10000, 32767, {}) == (10000, 32767)
    assert worker_slice(10000, 10500, {**env, "PYTEST_XDIST_WORKER": "gw1"}) == (10000, 10500)
