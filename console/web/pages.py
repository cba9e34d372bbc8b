"""Rendering helpers: every page gets the user, the CSRF token, the navigation the user may see, a flash."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console.web.rbac import allows, roles_for
from console.web.state import console, web_session

# (route name, label) in the order the navigation shows them; each link appears only if RBAC allows it.
NAVIGATION = [
    ("review_queue", "Review"),
    ("subjects", "Subjects & consents"),
    ("models", "Models"),
    ("batches", "Batches"),
    ("audit_search", "Audit log"),
    ("users", "Users"),
]


def may(request: Request, route_name: str) -> bool:
    """Whether the current visitor may use `route_name` (for links and buttons in templates)."""
    user = getattr(request.state, "user", None)
    return allows(
        roles_for(route_name), signed_in=user is not None, roles=user.roles if user else frozenset()
    )


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render `template` with the common context; a flash message is shown once and then forgotten."""
    session = web_session(request)
    flash = None
    if session is not None and session.flash:
        flash, session.flash = session.flash, None
    user = getattr(request.state, "user", None)
    base = {
        "user": user,
        "csrf_token": session.csrf_token if session else "",
        "navigation": [(name, label) for name, label in NAVIGATION if user and may(request, name)],
        "flash": flash,
        "may": lambda name: may(request, name),
    }
    return console(request).templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )


def redirect(
    request: Request, route_name: str, *, flash: str | None = None, **path_params: str
) -> RedirectResponse:
    """303 to a named route (the POST-redirect-GET pattern), with an optional one-time message."""
    session = web_session(request)
    if flash and session is not None:
        session.flash = flash
    return RedirectResponse(str(request.app.url_path_for(route_name, **path_params)), status_code=303)
