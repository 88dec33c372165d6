"""What the HTTP channels share: the guard that keeps them off internal networks (their
client, ``http_client.py``, connects only to the addresses the guard checked).

Webhook URLs and push endpoints come from users, so a send could otherwise be aimed at the
node's own network (``http://169.254.169.254/`` or an admin port on ``127.0.0.1``). The guard
resolves the host once, refuses it if any address it resolves to is not a public unicast
address, and pins the connection to exactly those addresses: a name that resolves to a
public address for the check and to a private one for the connection (DNS rebinding) gains
nothing.

A name's addresses are kept for :data:`RESOLVED_TTL_S` (as aiohttp's own resolver cache
does): a busy webhook target is looked up once in a while, not once per send (each lookup a
hop to a thread of the loop's executor). The guard checks the kept addresses on every send
all the same, and a failed lookup is not kept.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from trunkline.otp import current_node

from ..channel import PermanentFailure, TransientFailure

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AllowList:
    """Hosts (exact, case-insensitive names or IP literals) and networks a guarded channel
    may reach although they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str], *, option: str = "allow") -> AllowList:
        """Split ``entries`` into networks (``"10.0.0.0/8"``, ``"::1"``) and host names.

        Raises:
            ValueError: an entry is empty or not a string, naming ``option``.
        """
        if isinstance(entries, str):
            raise ValueError(f"{option} must be a list of hosts or CIDRs, not a string")
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            if not isinstance(entry, str) or not entry.strip():
                raise ValueError(f"{option}: expected a host name or a CIDR, got {entry!r}")
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a public unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True)
class Target:
    """A URL the guard let through: its host, port, and the addresses to connect to."""

    url: str
    host: str
    port: int
    addresses: tuple[tuple[socket.AddressFamily, str], ...]


async def check_url(url: str, allow: AllowList) -> Target:
    """Resolve ``url``'s host and refuse it unless every address is public or allowed.

    Raises:
        PermanentFailure: not an http(s) URL, or a host that is not public and not allowed.
        TransientFailure: the name could not be resolved for now.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise PermanentFailure(f"malformed URL {url!r}: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise PermanentFailure(f"refusing {url!r}: only http and https URLs are allowed")
    host = parts.hostname
    if not host:
        raise PermanentFailure(f"refusing {url!r}: the URL has no host")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    addresses = await _resolve(host, port)
    if not allow.allows_host(host):
        for _, text in addresses:
            address, public = _judged(text)
            if not public and not allow.allows_address(address):
                raise PermanentFailure(
                    f"refusing {url!r}: {host} resolves to {address}, which is not a public "
                    "address (add the host or its network to the channel's allow list to "
                    "reach it)"
                )
    return Target(url, host, port, addresses)


RESOLVED_TTL_S = 10.0
"""How long a name's addresses are kept."""
_RESOLVED_MAX = 1_024  # names kept at most; the oldest go first

Addresses = tuple[tuple[socket.AddressFamily, str], ...]
# Per event loop: each has its own clock (a test's virtual one, say).
_resolved_by_loop: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, OrderedDict[tuple[str, int], tuple[float, Addresses]]
] = weakref.WeakKeyDictionary()


_JUDGED_MAX = 4_096  # addresses whose verdict is kept; all are forgotten beyond that
_judged_addresses: dict[str, tuple[IPAddress, bool]] = {}
_literals: dict[str, Addresses | None] = {}


def _judged(text: str) -> tuple[IPAddress, bool]:
    """The address ``text`` names (an IPv6 zone left out), and whether it is public: a
    verdict that never changes, so it is kept rather than parsed again on every send."""
    judged = _judged_addresses.get(text)
    if judged is None:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        judged = (address, is_public(address))
        if len(_judged_addresses) >= _JUDGED_MAX:
            _judged_addresses.clear()
        _judged_addresses[text] = judged
    return judged


def _literal(host: str) -> Addresses | None:
    """``host`` as the address it is, if it is an IP literal (kept, like :func:`_judged`)."""
    if host in _literals:
        return _literals[host]
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        addresses = None
    else:
        family = socket.AF_INET if literal.version == 4 else socket.AF_INET6
        addresses = ((family, str(literal)),)
    if len(_literals) >= _JUDGED_MAX:
        _literals.clear()
    _literals[host] = addresses
    return addresses


async def _resolve(host: str, port: int) -> Addresses:
    literal = _literal(host)
    if literal is not None:  # an IP literal resolves to itself: no lookup (a thread hop)
        return literal
    now = current_node().clock.monotonic()
    loop = asyncio.get_running_loop()
    resolved = _resolved_by_loop.get(loop)
    if resolved is None:
        resolved = _resolved_by_loop[loop] = OrderedDict()
    key = (host.lower(), port)
    kept = resolved.get(key)
    if kept is not None and kept[0] > now:
        return kept[1]
    addresses = await _look_up(host, port)
    resolved[key] = (now + RESOLVED_TTL_S, addresses)
    resolved.move_to_end(key)
    while len(resolved) > _RESOLVED_MAX:
        resolved.popitem(last=False)
    return addresses


async def _look_up(host: str, port: int) -> Addresses:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as error:
        if error.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
            raise PermanentFailure(f"{host} does not resolve: {error.strerror}") from None
        raise TransientFailure(f"could not resolve {host}: {error.strerror}") from None
    found: dict[tuple[socket.AddressFamily, str], None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            found[(family, str(sockaddr[0]))] = None
    if not found:
        raise PermanentFailure(f"{host} has no IPv4 or IPv6 address")
    return tuple(found)


def body_excerpt(text: str, limit: int = 200) -> str:
    """The start of a response body, on one line, for a failure message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
