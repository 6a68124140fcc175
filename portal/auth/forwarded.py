"""Who the client is: the peer, or what a trusted reverse proxy says it forwarded.

``X-Forwarded-For`` and ``Forwarded`` are plain request headers: anyone can send them. Believing
them from any peer lets a client choose its own address, and with it its own rate-limit bucket
(issue 9, observation 8). So they are read only when the direct peer is one of the configured
``trusted_proxies`` (none by default), and then from the right: each trusted proxy appends the
address it saw, so the rightmost address that is not itself a trusted proxy is the client; what
lies to its left was written by the client and is ignored.

This is the one place the portal reads those headers; uvicorn's own ``--proxy-headers`` is off
(see ``vidflow/portal_cli.py``), so ``scope["client"]`` reaching this middleware is the real peer.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.middleware.base import DefineMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["ForwardedMiddleware", "TrustedProxies", "client_address", "forwarded_middleware"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FOR = re.compile(r'(?i)(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)')
_PROTO = re.compile(r'(?i)(?:^|;)\s*proto\s*=\s*("[^"]*"|[^;,\s]*)')


@dataclass(frozen=True)
class TrustedProxies:
    """The networks whose forwarded headers are believed."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """From settings; a malformed entry fails at start-up, naming it, rather than trusting
        nothing (or everything) silently."""
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                reason = f"VIDFLOW_PORTAL_TRUSTED_PROXIES: {entry!r} is not an address or network"
                raise ValueError(reason) from exc
        return cls(tuple(networks))

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (an IP literal; anything else is never trusted) is a proxy."""
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _node(raw: str) -> str | None:
    """The address in one ``Forwarded: for=`` value or ``X-Forwarded-For`` item (ports and
    brackets dropped); None when it is not an IP address (``unknown``, ``_hidden``, garbage)."""
    value = raw.strip().strip('"').strip()
    if value.startswith("["):  # [2001:db8::1]:4711
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # 192.0.2.1:4711
        value = value.split(":", 1)[0]
    ip = _ip(value)
    return None if ip is None else str(ip)


def _chain(headers: Headers) -> list[str | None]:
    """The forwarded addresses, client first; ``Forwarded`` (RFC 7239) wins over the de-facto
    ``X-Forwarded-For`` when both are sent."""
    forwarded = headers.getall("forwarded", [])
    if forwarded:
        elements = [e for value in forwarded for e in value.split(",")]
        found = [_FOR.search(e) for e in elements]
        return [_node(m.group(1)) for m in found if m is not None]
    items = [i for value in headers.getall("x-forwarded-for", []) for i in value.split(",")]
    return [_node(i) for i in items if i.strip()]


def client_address(peer: str, headers: Headers, trusted: TrustedProxies) -> str:
    """The client's address: ``peer`` unless ``peer`` is a trusted proxy, then the rightmost
    forwarded address that is not a trusted proxy (an unreadable one stops the walk: whoever
    wrote it is not trusted, so the last trusted hop stands)."""
    if not trusted.trusts(peer):
        return peer
    client = peer
    for address in reversed(_chain(headers)):
        if address is None:
            break
        client = address
        if not trusted.trusts(address):
            break
    return client


def _scheme(headers: Headers, default: str) -> str:
    forwarded = headers.get("forwarded", "")
    found = _PROTO.search(forwarded.split(",")[-1]) if forwarded else None
    proto = (found.group(1) if found else headers.get("x-forwarded-proto", "")).strip('" ')
    proto = proto.split(",")[-1].strip().lower()
    return proto if proto in ("http", "https") else default


class ForwardedMiddleware:
    """Set ``scope["client"]`` (and the scheme) from a trusted proxy's headers, before any rate
    limit, login throttle or log line looks at who is asking."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            peer = scope.get("client")
            host = peer[0] if peer else ""
            if self.trusted.trusts(host):
                headers = Headers.from_scope(scope)
                scope["client"] = (client_address(host, headers, self.trusted), 0)
                scope["scheme"] = _scheme(headers, scope.get("scheme", "http"))
        await self.app(scope, receive, send)


def forwarded_middleware(trusted_proxies: Sequence[str]) -> DefineMiddleware:
    """The middleware for the settings' ``trusted_proxies``."""
    return DefineMiddleware(ForwardedMiddleware, trusted=TrustedProxies.parse(trusted_proxies))
