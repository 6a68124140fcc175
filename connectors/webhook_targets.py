"""Which URLs a webhook may be sent to: the guard against a subscription used as a probe.

A subscriber chooses the URL, so the sender would otherwise POST wherever a user says: the
metadata service of a cloud host, the database's port, an admin page on the inside network.
:func:`check_target` resolves the host and refuses any address that is loopback, private,
link-local, multicast, reserved or unspecified (unless the installation allows them), and any
scheme but http and https. It runs when a subscription is made and again before every POST,
since what a name resolves to may change after it was accepted; and the POST is made to the
address that was checked (:func:`resolve_target`), never to a second lookup of the name that
could answer differently (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

import msgspec

__all__ = ["Target", "TargetRefused", "check_target", "resolve_target"]

MAX_URL_CHARS = 2048


class TargetRefused(ValueError):
    """The URL is not one vidflow sends webhooks to; the text says why (without the URL)."""


def _is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _is_internal(address.ipv4_mapped)
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused("the host name does not resolve") from exc
    # an IPv6 answer may carry a zone (``fe80::1%eth0``): the address is what precedes it
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """A URL that passed the check, with the addresses it was checked at."""

    url: str
    addresses: tuple[str, ...]
    host_header: str  # the URL's host (and port, as written), for the Host header
    sni_hostname: str  # the name TLS presents and checks the certificate against
    scheme: str
    port: int
    path: str  # path and query, as written

    def connect_url(self, address: str) -> str:
        """The URL with its host replaced by ``address`` (one of :attr:`addresses`)."""
        host = f"[{address}]" if ":" in address else address
        return SplitResult(self.scheme, f"{host}:{self.port}", self.path, "", "").geturl()


def resolve_target(url: str, *, allow_private: bool) -> Target:
    """``url`` checked, with the addresses to connect to; :class:`TargetRefused` if it may not
    be sent to."""
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise TargetRefused(f"the URL must be 1 to {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise TargetRefused("not a valid URL") from exc
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise TargetRefused("the URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL must not carry a user name or password")
    addresses = _addresses(parts.hostname, port)
    if not addresses:
        raise TargetRefused("the host name does not resolve")
    if not allow_private and any(_is_internal(a) for a in addresses):
        raise TargetRefused(
            "the host is on a loopback, private or link-local address, which webhooks are "
            "not sent to (VIDFLOW_WEBHOOKS_ALLOW_PRIVATE)"
        )
    path = parts.path or "/"
    return Target(
        url=url,
        addresses=tuple(dict.fromkeys(str(a) for a in addresses)),
        host_header=parts.netloc,
        sni_hostname=parts.hostname,
        scheme=parts.scheme,
        port=port,
        path=f"{path}?{parts.query}" if parts.query else path,
    )


def check_target(url: str, *, allow_private: bool) -> str:
    """``url`` (stripped) if webhooks may be POSTed to it, else :class:`TargetRefused`."""
    return resolve_target(url, allow_private=allow_private).url
