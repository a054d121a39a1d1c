"""Where Relay may send: the addresses behind contact URLs (webhook, DingTalk robots).

A contact URL is written by a school's administrator, so it must not let them reach what
only the server can reach (blind SSRF): loopback and private addresses are refused unless
the operator lists their range in RELAY_WEBHOOK_ALLOW_PRIVATE (comma-separated CIDRs);
link-local addresses (169.254.0.0/16, fe80::/10) and cloud metadata addresses
(169.254.169.254, fd00:ec2::254, Alibaba Cloud's 100.100.100.200) never, whatever is listed.
https:// is required, except to an address in an allowed range: plain http would carry a
parent's message in clear across the internet.

Checked twice: when a directory is configured (`relay config check`, every publish, the
roster check), so that an administrator hears which contact is refused; and at every send,
after DNS resolution, connecting to the very address that was checked, so that a name
that resolved to a public address then cannot rebind to a private one (`transport`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

from adapters.base import AddressRefused
from routing.directory import School
from routing.validation import Problem

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], list[str]]

METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
ALLOW_VARIABLE = "RELAY_WEBHOOK_ALLOW_PRIVATE"
# What `relay dev` and the replay allow: their receivers (a local webhook, the replay's phones) are on this machine.
LOOPBACK = "127.0.0.0/8,::1/128"


def parse_allowed(text: str) -> tuple[Network, ...]:
    """RELAY_WEBHOOK_ALLOW_PRIVATE's ranges; ValueError names the one that is not a CIDR."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ValueError(f"{ALLOW_VARIABLE}: {part!r} is not an address range (CIDR, like 10.0.0.0/8)") from exc
    return tuple(networks)


def _address(text: str) -> Address:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") says nothing here
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    return address


def refusal(text: str, allowed: Iterable[Network], *, public: bool = True) -> str | None:
    """Why Relay must not connect to this address, or None. `public=False`: only allowed ranges (plain http)."""
    address = _address(text)
    if address in METADATA:
        return f"{address} is a cloud metadata address: never allowed"
    if any(address in network for network in LINK_LOCAL):
        return f"{address} is a link-local address: never allowed"
    if any(address in network for network in allowed if network.version == address.version):
        return None
    if address.is_global and not address.is_multicast:
        return None if public else (f"{address} is a public address: http:// is allowed only to addresses in "
                                    f"{ALLOW_VARIABLE}; use https://")
    return f"{address} is a loopback or private address not listed in {ALLOW_VARIABLE}"


def resolve(host: str, port: int) -> list[str]:
    """Every address the name resolves to (OSError when it does not)."""
    return list(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))


def check_url(url: str, allowed: Iterable[Network], resolver: Resolve | None = resolve) -> str | None:
    """What is wrong with sending to `url`, or None. `resolver=None`: literal addresses only (no DNS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an https:// address"
    host, public = parts.hostname, parts.scheme == "https"
    try:
        port = parts.port or (443 if public else 80)
    except ValueError:
        return "has a port that is not a number"
    try:
        addresses = [str(_address(host))]
    except ValueError:
        if resolver is None:
            return None
        try:
            addresses = resolver(host, port)
        except OSError:
            # Not resolvable from here now: every send checks again. Plain http cannot be shown to stay private.
            return None if public else f"http:// is allowed only to addresses in {ALLOW_VARIABLE}, and {host} does not resolve here"
    for address in addresses:
        reason = refusal(address, allowed, public=public)
        if reason:
            return reason if address == host else f"{host} resolves to {address}; {reason}"
    return None


def contact_problems(school: School, allowed: Iterable[Network], known: School | None = None,
                     resolver: Resolve | None = resolve) -> list[Problem]:
    """Each refused contact URL, named by staff member and contact. A URL the `known` version already had
    is checked without DNS (literal addresses only): publishing a leave or a setting resolves nothing."""
    allowed = tuple(allowed)
    before = {c.url for member in known.staff for c in member.contacts if c.url} if known else set()
    problems = []
    for member in school.staff:
        for i, contact in enumerate(member.contacts):
            if not contact.url:
                continue
            reason = check_url(contact.url, allowed, None if contact.url in before else resolver)
            if reason:
                problems.append(Problem(f"staff[{member.id}].contacts[{i}] ({contact.channel.value})",
                                        f"{member.name}（{member.id}）的 {contact.channel.value} 地址不能使用: {reason}"))
    return problems


# Send time --------------------------------------------------------------------------------------


class _CheckedBackend(httpcore.SyncBackend):
    """Resolves the name once, refuses if any address is not allowed, and connects to a checked address."""

    def __init__(self, allowed: tuple[Network, ...], public: bool, resolver: Resolve) -> None:
        self._allowed, self._public, self._resolve = allowed, public, resolver

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve: {type(exc).__name__}") from exc
        for address in addresses:
            reason = refusal(address, self._allowed, public=self._public)
            if reason:
                raise AddressRefused(reason)
        failure: Exception = httpcore.ConnectError("no address")
        for address in addresses:
            try:  # by address, not by name: no second lookup for a rebinding DNS server to answer differently
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure


class _CheckedPool(httpx.HTTPTransport):
    def __init__(self, backend: _CheckedBackend, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx builds its pool without a way to pass a network backend: the same pool, with ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend)


class Transport(httpx.BaseTransport):
    """The transport for contact URLs: https to public or allowed addresses, http to allowed ones only.

    No proxy from the environment (trust_env=False): a proxy would resolve the name itself, past this check."""

    def __init__(self, allowed: tuple[Network, ...], limits: httpx.Limits, resolver: Resolve = resolve) -> None:
        self._https = _CheckedPool(_CheckedBackend(allowed, True, resolver), limits)
        self._http = _CheckedPool(_CheckedBackend(allowed, False, resolver), limits)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return (self._https if request.url.scheme == "https" else self._http).handle_request(request)

    def close(self) -> None:
        self._https.close()
        self._http.close()
