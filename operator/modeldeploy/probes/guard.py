"""Where the operator may fetch a ModelDeployment's data set from: the host is resolved first, every address
it resolves to is checked, and the connection goes to the checked address (Host header and TLS server name
stay the URL's), so a DNS answer that changes between check and connect cannot steer the operator.

Refused, with the rule named: loopback (127.0.0.0/8, ::1), link-local (169.254.0.0/16, fe80::/10: cloud
metadata endpoints), unspecified (0.0.0.0/8, ::) and any range the platform lists
(``MODELDEPLOY_DATASET_BLOCKED_NETWORKS``). Hosts the platform configured itself (the Prometheus URL, the
test-only static address map) are trusted settings and exempt.

Public: ``DestinationGuard``, ``DestinationRefused``, ``Pinned``, ``refusal(address, blocked)`` (pure),
``parse_networks(texts)``, ``hosts_of(urls)``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

BUILTIN_RULES = tuple(
    (rule, tuple(ipaddress.ip_network(n) for n in networks))
    for rule, networks in (
        ("loopback", ("127.0.0.0/8", "::1/128")),
        ("link-local", ("169.254.0.0/16", "fe80::/10")),
        ("unspecified", ("0.0.0.0/8", "::/128")),
    )
)
PLATFORM_RULE = "blocked by the platform (datasetBlockedNetworks)"


class DestinationRefused(Exception):
    """The destination may not be fetched; the message names the host, the address and the rule."""


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """CIDR ranges (or single addresses) as the platform writes them; ValueError names a bad one."""
    return tuple(ipaddress.ip_network(t.strip(), strict=False) for t in texts if t.strip())


Rules = tuple[tuple[str, tuple[Network, ...]], ...]


def refusal(address: str, blocked: Sequence[Network] = (), rules: Rules = BUILTIN_RULES) -> str | None:
    """The rule that refuses `address`, or None when it may be fetched."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    for rule, networks in rules:
        if any(ip in n for n in networks):
            return rule
    if any(ip in n for n in blocked):
        return PLATFORM_RULE
    return None


def hosts_of(urls: Iterable[str]) -> frozenset[str]:
    """Host names of URLs (lower case), for the exempt set."""
    hosts = set()
    for url in urls:
        try:
            host = httpx.URL(url).host
        except (httpx.InvalidURL, TypeError):
            continue
        if host:
            hosts.add(host.lower())
    return frozenset(hosts)


@dataclass(frozen=True)
class Pinned:
    """What to send instead of the URL: the checked address, and the name to present to the server."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DestinationGuard:
    """`blocked`: the platform's ranges; `exempt_hosts`: hosts the platform named itself; `rules`: the
    built-in ones (only tests of the pinning itself set them empty)."""

    blocked: tuple[Network, ...] = ()
    exempt_hosts: frozenset[str] = frozenset()
    rules: Rules = BUILTIN_RULES

    async def pin(self, url: str) -> Pinned:
        """Resolves and checks the URL's host; raises DestinationRefused."""
        parsed = httpx.URL(url)
        host = parsed.host.lower()
        if not host:
            raise DestinationRefused(f"{url} names no host")
        if host in self.exempt_hosts:
            return Pinned(url)
        addresses = await _resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
        for address in addresses:
            rule = refusal(address, self.blocked, self.rules)
            if rule:
                shown = host if host == address else f"{host} ({address})"
                raise DestinationRefused(f"host {shown} is refused: {rule}")
        address = addresses[0]
        if address == host:  # an address already: nothing to pin
            return Pinned(url)
        headers = {"Host": parsed.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
        return Pinned(str(parsed.copy_with(host=address)), headers, extensions)


async def _resolve(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise DestinationRefused(
            f"host {host} does not resolve ({err.strerror or type(err).__name__})"
        ) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise DestinationRefused(f"host {host} does not resolve")
    return addresses
