"""Server-side sessions behind a signed cookie: idle and absolute expiry, rotation at sign-in, revocation.

The cookie carries only a random token signed with itsdangerous; who is signed in, the CSRF secret and
the timestamps stay in server memory. Signing out, or a restart, kills the session for good (a copied
cookie is worthless afterwards), which a stateless signed cookie could not promise. The console is one
process on 127.0.0.1, so memory is the right store; several processes would need a shared table.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE_NAME = "likeness_session"
_SALT = "likeness.console.session"


@dataclass
class WebSession:
    """One browser's session. `user_id` is None before sign-in (the sign-in form still needs a CSRF token)."""

    token: str
    csrf_token: str
    user_id: str | None
    created_at: datetime
    last_seen: datetime
    flash: str | None = None  # a one-time message for the next page (after a redirect)


class SessionStore:
    """Sessions by token, with idle and absolute expiry measured on an injectable clock."""

    def __init__(
        self,
        *,
        secret: str,
        idle: timedelta,
        absolute: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._signer = URLSafeSerializer(secret, salt=_SALT)
        self._idle = idle
        self._absolute = absolute
        self._clock = clock
        self._sessions: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    @property
    def idle(self) -> timedelta:
        """How long an unused session lives (also the cookie's Max-Age)."""
        return self._idle

    def create(self, user_id: str | None = None) -> WebSession:
        """A fresh session with new random token and CSRF secret."""
        now = self._clock()
        session = WebSession(
            token=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            user_id=user_id,
            created_at=now,
            last_seen=now,
        )
        with self._lock:
            self._purge(now)
            self._sessions[session.token] = session
        return session

    def rotate(self, old: WebSession | None, user_id: str) -> WebSession:
        """Sign-in: drop the anonymous session and issue a new one (no session fixation)."""
        if old is not None:
            self.drop(old)
        return self.create(user_id)

    def drop(self, session: WebSession) -> None:
        """Sign-out (or expiry): forget the session; its cookie no longer opens anything."""
        with self._lock:
            self._sessions.pop(session.token, None)

    def from_cookie(self, value: str | None) -> WebSession | None:
        """The live session a cookie names, touched; None for a missing, forged or expired one."""
        if not value:
            return None
        try:
            token = self._signer.loads(value)
        except BadSignature:
            return None
        if not isinstance(token, str):
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if now - session.last_seen > self._idle or now - session.created_at > self._absolute:
                del self._sessions[token]
                return None
            session.last_seen = now
            return session

    def cookie_value(self, session: WebSession) -> str:
        """The signed token to put in the cookie."""
        return self._signer.dumps(session.token)

    def _purge(self, now: datetime) -> None:
        """Drop expired sessions so memory stays bounded by the active ones (called under the lock)."""
        dead = [
            token
            for token, s in self._sessions.items()
            if now - s.last_seen > self._idle or now - s.created_at > self._absolute
        ]
        for token in dead:
            del self._sessions[token]
