"""The client's address, for per-address budgets and auth's (name, address) login throttle.

The socket's peer is the client, unless the peer is a trusted proxy
(``GATEWAY_TRUSTED_PROXIES``, CIDRs; default none). Then the ``X-Forwarded-For`` (or
RFC 7239 ``Forwarded``) chain is read from the right, skipping trusted proxies: the first
address that is not one is the client. A header from anyone else is ignored, so a client
cannot pick its own address by forging one.

IPv6 clients are counted by their /64 (one host usually holds a whole /64).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_FOR = re.compile(r'for=(?:"\[?([^"\]]+)\]?(?::\d+)?"|\[?([^;,\s\]]+)\]?)', re.IGNORECASE)


def parse_networks(cidrs: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()]


def _ip(text: str) -> Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _chain(headers: Mapping[str, str]) -> list[str]:
    """Hops as the proxies appended them, nearest last."""
    forwarded = headers.get("forwarded")
    if forwarded:
        return [a or b for a, b in _FOR.findall(forwarded)]
    xff = headers.get("x-forwarded-for")
    return [h for h in (xff or "").split(",") if h.strip()]


def client_address(peer: str | None, headers: Mapping[str, str], trusted: Sequence[Network]) -> str:
    """The address to charge: the peer, or behind trusted proxies the rightmost untrusted hop."""
    ip = _ip(peer or "")
    if ip is None:
        return peer or "unknown"
    if trusted and any(ip in n for n in trusted):
        for hop in reversed(_chain(headers)):
            hop_ip = _ip(hop)
            if hop_ip is None:
                break  # garbage in the chain: stop believing it here
            ip = hop_ip
            if not any(hop_ip in n for n in trusted):
                break
    return bucket_key(ip)


def bucket_key(ip: Address) -> str:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)
