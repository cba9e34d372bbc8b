"""The console's own knobs, as plain data: built from `Settings` by the CLI, or directly by tests."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from console.web.proxy import Network, normalise_origin, parse_networks
from governance.types import utcnow


@dataclass(frozen=True)
class WebConfig:
    """How sessions, uploads and sign-in throttling behave.

    `session_secret` signs the session cookie; when the operator sets none, a random one per process is
    used (sessions live in server memory anyway, so a restart signs everyone out either way).
    `clock` is injectable so that expiry and throttling can be tested without sleeping.
    Behind a TLS-terminating reverse proxy, `public_origin` is the origin browsers see
    (`https://console.example`) and `trusted_proxies` the proxy's addresses or networks: only from those
    peers are `X-Forwarded-For` (the client address, for throttling and the audit log) and
    `X-Forwarded-Proto`/`-Host` believed.
    """

    session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session_minutes: int = 30  # idle timeout: a session unused this long is gone
    session_max_hours: int = 12  # absolute lifetime, however busy the session
    secure_cookies: bool = True  # `Secure` flag; off only for plain-HTTP loopback development
    max_upload_bytes: int = 200 * 1024 * 1024  # whole request body, uploads included
    sign_in_max_failures: int = 5  # per account, within the window
    # Per client address: higher, since an office behind one NAT address shares it; one address guessing
    # across many accounts is still stopped.
    sign_in_max_failures_per_address: int = 20
    sign_in_window_seconds: int = 15 * 60
    page_size: int = 50
    publish_on_approval: bool = True  # as `likeness review approve` does; False leaves it to the deployment
    public_origin: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    clock: Callable[[], datetime] = utcnow
    trusted_networks: tuple[Network, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        if len(self.session_secret) < 16:
            raise ValueError("console session secret too short: use at least 16 characters")
        if self.session_minutes < 1 or self.session_max_hours < 1:
            raise ValueError("console session lifetime must be positive")
        if self.max_upload_bytes < 1024:
            raise ValueError("console upload limit must be at least 1 KiB")
        if self.sign_in_max_failures < 1 or self.sign_in_max_failures_per_address < 1:
            raise ValueError("console sign-in limits must be positive")
        if self.public_origin:
            object.__setattr__(self, "public_origin", normalise_origin(self.public_origin))
        object.__setattr__(self, "trusted_networks", parse_networks(self.trusted_proxies))
