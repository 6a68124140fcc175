"""Which URLs a webhook may be sent to: the guard against a subscription used as a probe.

A subscriber chooses the URL, so the sender would otherwise POST wherever a user says: the
metadata service of a cloud host, the database's port, an admin page on the inside network.
:func:`check_target` resolves the host and refuses any address that is loopback, private,
link-local, multicast, reserved or unspecified (unless the installation allows them), and any
scheme but http and https. It runs when a subscription is made and again before every POST,
since what a name resolves to may change after it was accepted.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["TargetRefused", "check_target"]

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


def check_target(url: str, *, allow_private: bool) -> str:
    """``url`` (stripped) if webhooks may be POSTed to it, else :class:`TargetRefused`."""
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
    return url
