"""What every request handler reaches through `request.app.state.console`: runtime, config, sessions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates

from console.web.config import WebConfig
from console.web.ratelimit import SignInThrottle
from console.web.sessions import SessionStore, WebSession
from flows.runtime.root import Runtime


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user, read from the database on every request (a disabled user is out at once)."""

    id: str
    email: str
    display_name: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        """Whether the user holds `role`."""
        return role in self.roles


@dataclass(frozen=True)
class ConsoleState:
    """The app's process-wide parts: built once in `create_app`."""

    runtime: Runtime
    config: WebConfig
    sessions: SessionStore
    throttle: SignInThrottle
    templates: Jinja2Templates
    upload_dir: Path  # uploads are spooled here (inside the runtime's allowed input folders)
    media_cache: Path  # verified copies of stored objects, named by sha256, streamed with range support


def console(request: Request) -> ConsoleState:
    """The console state of the app serving `request`."""
    return request.app.state.console


def web_session(request: Request) -> WebSession | None:
    """The request's live session (loaded by the session middleware), if any."""
    return getattr(request.state, "web_session", None)


def current_user(request: Request) -> CurrentUser:
    """The signed-in user; the RBAC check has already refused anonymous visitors on protected routes."""
    user = getattr(request.state, "user", None)
    if user is None:
        raise RuntimeError("current_user() on a route without a signed-in user")
    return user
