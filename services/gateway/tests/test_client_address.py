"""The client's address: the peer, or behind trusted proxies the rightmost untrusted hop;
a forwarded header from anyone else is ignored. Per-address and global /v1/auth budgets."""

from __future__ import annotations

import pytest
from chat_gateway.client_address import client_address, parse_networks
from chat_gateway.limits import LOGIN, LOGIN_GLOBAL, Limits, Rule, charge_address
from chat_gateway.settings import GatewaySettings
from chat_proto.errors import ChatError

PROXIES = parse_networks(["10.0.0.0/8", "192.168.1.1/32"])


def test_a_forged_header_from_an_untrusted_peer_is_ignored() -> None:
    for headers in ({"x-forwarded-for": "1.2.3.4"}, {"forwarded": "for=1.2.3.4"}):
        assert client_address("203.0.113.5", headers, PROXIES) == "203.0.113.5"
        assert client_address("203.0.113.5", headers, []) == "203.0.113.5"  # default: trust no one
        assert client_address("10.1.1.1", headers, []) == "10.1.1.1"


def test_behind_trusted_proxies_the_rightmost_untrusted_hop() -> None:
    # client 198.51.100.1 -> (forged 1.2.3.4 prepended by the client) -> proxy 10.0.0.2 -> proxy 192.168.1.1
    xff = {"x-forwarded-for": "1.2.3.4, 198.51.100.1, 10.0.0.2"}
    assert client_address("192.168.1.1", xff, PROXIES) == "198.51.100.1"
    fwd = {"forwarded": 'for=1.2.3.4, for="[2001:db8::1]:4711";proto=https, for=10.0.0.2'}
    assert client_address("10.0.0.9", fwd, PROXIES) == "2001:db8::/64"
    assert client_address("10.0.0.9", {}, PROXIES) == "10.0.0.9"  # no header: the proxy itself
    assert client_address("10.0.0.9", {"x-forwarded-for": "10.0.0.3"}, PROXIES) == "10.0.0.3"
    assert client_address("10.0.0.9", {"x-forwarded-for": "garbage, 10.0.0.3"}, PROXIES) == "10.0.0.3"


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert client_address("2001:db8:1:2:aaaa::1", {}, []) == "2001:db8:1:2::/64"
    assert client_address("2001:db8:1:2:bbbb::9", {}, []) == "2001:db8:1:2::/64"
    assert client_address("::ffff:198.51.100.3", {}, []) == "198.51.100.3"


def test_trusted_proxies_setting() -> None:
    assert GatewaySettings(trusted_proxies="10.0.0.0/8, ::1/128").trusted_proxies == ["10.0.0.0/8", "::1/128"]
    with pytest.raises(ValueError):
        GatewaySettings(trusted_proxies="not-a-cidr")


def test_per_address_and_global_budgets() -> None:
    t = [0.0]
    limits = Limits({LOGIN: Rule(2, 0.1), LOGIN_GLOBAL: Rule(3, 0.1)}, clock=lambda: t[0])
    charge_address(limits, LOGIN, LOGIN_GLOBAL, "a")
    charge_address(limits, LOGIN, LOGIN_GLOBAL, "a")
    with pytest.raises(ChatError) as per_address:
        charge_address(limits, LOGIN, LOGIN_GLOBAL, "a")
    assert "this address" in per_address.value.message and per_address.value.retry_after_ms
    charge_address(limits, LOGIN, LOGIN_GLOBAL, "b")  # another address: its own budget
    with pytest.raises(ChatError) as everyone:
        charge_address(limits, LOGIN, LOGIN_GLOBAL, "c")  # but the global one is spent
    assert "this address" not in everyone.value.message
    t[0] += 10.0
    charge_address(limits, LOGIN, LOGIN_GLOBAL, "c")  # c was given its token back, and refilled


def test_the_registry_is_bounded() -> None:
    limits = Limits({LOGIN: Rule(1, 0.001)}, max_buckets=100)
    for i in range(1000):
        limits.check(f"10.0.{i // 256}.{i % 256}", LOGIN)
    assert len(limits) <= 100
