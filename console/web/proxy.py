"""Where a request really comes from, when the console sits behind a TLS-terminating reverse proxy.

Behind a proxy the socket's peer is the proxy, and the request the app sees is plain `http` to the
proxy's upstream address. Forwarded headers are believed only from the peers the operator named as
trusted proxies (anyone else could send them), and the public origin the browser sees is a setting
(`WebConfig.public_origin`), so the CSRF origin check compares with what the browser really sends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks (`127.0.0.1`, `10.0.0.0/8`); a malformed one refuses with its value named."""
    networks = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {text!r} is not an IP address or network") from None
    return tuple(networks)


def normalise_origin(value: str) -> str:
    """`scheme://host[:port]` with a default port dropped; refuses anything that is not an http(s) origin."""
    parts = urlsplit(value.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
    ):
        raise ValueError(f"public origin {value!r} is not an origin like https://console.example")
    default = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def _is_trusted(address: str | None, trusted: tuple[Network, ...]) -> bool:
    if not address or not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(request: Request, trusted: tuple[Network, ...]) -> str:
    """The client's address: the socket peer, or, when the peer is a trusted proxy, the nearest address in
    `X-Forwarded-For` that is not itself a trusted proxy (the left-most entries are the client's claims)."""
    peer = request.client.host if request.client else None
    if not _is_trusted(peer, trusted):
        return peer or "unknown"
    hops = [hop.strip() for header in request.headers.getlist("x-forwarded-for") for hop in header.split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _is_trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return "unknown"
    return peer or "unknown"


def expected_origin(request: Request, *, public_origin: str | None, trusted: tuple[Network, ...]) -> str:
    """The origin a same-site browser sends: the configured public one, else what a trusted proxy forwarded,
    else the request's own scheme and Host."""
    if public_origin:
        return public_origin
    scheme, host = request.url.scheme, request.headers.get("host", "")
    peer = request.client.host if request.client else None
    if _is_trusted(peer, trusted):
        scheme = (request.headers.get("x-forwarded-proto") or scheme).split(",")[0].strip().lower()
        host = (request.headers.get("x-forwarded-host") or host).split(",")[0].strip()
    try:
        return normalise_origin(f"{scheme}://{host}")
    except ValueError:
        return f"{scheme}://{host}"
