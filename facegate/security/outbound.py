"""Where the server may send requests of its own (alert webhooks, and any future URL input).

A URL an API caller sets makes the server a client: without a rule, a key bound to one
gallery could have FaceGate POST to its own loopback services, the cloud metadata address or
the intranet (server-side request forgery). The rule: http or https only, a host name and
nothing else in the authority (no user:password), and every address the host resolves to
public, unless the operator names it (or its network) in ``FACEGATE_OUTBOUND_ALLOWED_HOSTS``.
The check runs when the URL is set and again before each request, which is sent with
redirects off. What it does not cover: a name that resolves to a public address at the check
and to a private one a moment later (DNS rebinding) is caught only by the check at send time.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from facegate.errors import InvalidRequestError

Resolver = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidRequestError(f"the host {host!r} does not resolve ({exc})") from None
    return sorted({str(info[4][0]) for info in infos})


def _allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str, allowed: Iterable[str]) -> bool:
    for entry in allowed:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_outbound_url(url: str, allowed: Iterable[str] = (), resolve: Resolver = _resolve) -> str:
    """``url`` if the server may send to it, else an InvalidRequestError saying why."""
    allowed = list(allowed)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequestError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequestError(f"only http and https URLs are allowed, not {parts.scheme or 'no scheme'!r}")
    host = parts.hostname
    if not host:
        raise InvalidRequestError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequestError("the URL must not carry a user name or password; use the webhook secret")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InvalidRequestError("the URL contains spaces or control characters")
    for text in resolve(host, port or (443 if parts.scheme == "https" else 80)):
        address = ipaddress.ip_address(text.split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        if address.is_global and not address.is_multicast:
            continue
        if _allowed(address, host, allowed):
            continue
        raise InvalidRequestError(
            f"{host!r} resolves to {address}, a loopback, private or reserved address; the server does not send "
            "requests there unless the operator allows it (FACEGATE_OUTBOUND_ALLOWED_HOSTS)"
        )
    return url
