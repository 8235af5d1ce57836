"""Free ports for test servers: below the ephemeral range, distinct, bindable."""

from __future__ import annotations

import socket

from chat_devtools.ports import LOOPBACK, ephemeral_low, free_port, free_ports, port_is_free


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
