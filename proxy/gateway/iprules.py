"""Who the client is (behind trusted proxies) and whether its address may call.

Client address: the TCP peer, unless the peer is a trusted proxy (``GATEWAY_TRUSTED_PROXIES``);
then ``X-Forwarded-For`` is read from the right, skipping trusted proxies, and the first address
that is not one is the client. Everything left of it was written by the client and may be a lie,
so a client that is not behind a trusted proxy cannot choose its address by sending the header.

Rules (per route, per partner): CIDR lists. A deny match refuses; with an allow list, only its
addresses pass. Route rules apply before authentication (a refused address costs no key lookup),
partner rules right after it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (a bare address is a /32 or /128); raises ValueError naming the bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP network (CIDR)") from None
    return tuple(networks)


def parse_address(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:203.0.113.7 is 203.0.113.7 for every rule
    return address


def _contains(networks: Sequence[IPNetwork], address: IPAddress) -> bool:
    return any(address.version == n.version and address in n for n in networks)


class IpRules:
    __slots__ = ("allow", "deny")

    def __init__(self, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> None:
        self.allow = parse_networks(allow)
        self.deny = parse_networks(deny)

    def __bool__(self) -> bool:
        return bool(self.allow or self.deny)

    def permits(self, ip: str) -> bool:
        address = parse_address(ip)
        if address is None:  # no usable address (a Unix socket): only an open rule set passes
            return not self.allow
        if _contains(self.deny, address):
            return False
        return not self.allow or _contains(self.allow, address)


class ClientAddress:
    """Resolves the client's address from the peer and ``X-Forwarded-For``."""

    __slots__ = ("trusted",)

    def __init__(self, trusted: Iterable[str]) -> None:
        self.trusted = parse_networks(trusted)

    def __bool__(self) -> bool:
        return bool(self.trusted)

    def is_trusted(self, ip: str) -> bool:
        address = parse_address(ip)
        return address is not None and _contains(self.trusted, address)

    def resolve(self, peer: str, forwarded_for: Sequence[str] | None) -> str:
        if not forwarded_for or not self.is_trusted(peer):
            return peer
        client = peer
        hops = [h.strip() for value in forwarded_for for h in value.split(",")]
        for hop in reversed(hops):
            if not hop:
                continue
            address = parse_address(hop)
            if address is None:
                break  # garbage where an address should be: believe nothing further left
            client = str(address)
            if not _contains(self.trusted, address):
                break
        return client  # all hops trusted: the leftmost is as close to the client as we get
