"""The one place every request is checked: who is signed in, the RBAC table, and CSRF on unsafe methods.

`authorize` is installed as an app-wide dependency, so it runs before every route's handler and no
route can forget it. It reads the route's name from the matched route and looks it up in
`console.web.rbac.ROUTE_ROLES`; a route without an entry is refused to everyone.
"""

from __future__ import annotations

import hmac

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from console.web.errors import CsrfRejected, Forbidden, SignInRequired
from console.web.proxy import expected_origin, normalise_origin
from console.web.rbac import Access, allows, roles_for
from console.web.state import CurrentUser, console, web_session
from governance.access import record_denied
from governance.schema import User
from governance.uow import unit_of_work

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"


def _load_user(request: Request, user_id: str) -> CurrentUser | None:
    with unit_of_work(console(request).runtime.sessions) as db:
        user = db.get(User, user_id)
        if user is None or not user.active:
            return None
        return CurrentUser(user.id, user.email, user.display_name, frozenset(user.roles))


def _record_denial(request: Request, user: CurrentUser, route: str, required: list[str]) -> None:
    """A signed-in user refused by the table is on record (`access.denied`, as governance names it)."""
    with unit_of_work(console(request).runtime.sessions) as db:
        record_denied(
            db,
            actor_email=user.email,
            user_id=user.id,
            attempted=f"console:{route}",
            required_roles=required,
            held_roles=sorted(user.roles),
            details={"method": request.method, "path": request.url.path},
        )


async def authorize(request: Request) -> None:
    """Refuse the request unless the RBAC table lets this visitor use this route (and CSRF holds)."""
    route = request.scope.get("route")
    name = getattr(route, "name", None) or ""
    rule = roles_for(name)
    session = web_session(request)
    user: CurrentUser | None = None
    if session is not None and session.user_id is not None:
        user = await run_in_threadpool(_load_user, request, session.user_id)
        if user is None:  # disabled or deleted since sign-in: the session ends now
            console(request).sessions.drop(session)
            request.state.web_session = None
            session = None
    request.state.user = user
    if rule is None:
        raise Forbidden(f"route {name or request.url.path} has no entry in the access table")
    if rule is not Access.public and user is None:
        raise SignInRequired("sign in to continue")
    if not allows(rule, signed_in=user is not None, roles=user.roles if user else frozenset()):
        assert user is not None and isinstance(rule, frozenset)
        wanted = " or ".join(sorted(role.value for role in rule))
        await run_in_threadpool(_record_denial, request, user, name, sorted(role.value for role in rule))
        raise Forbidden(f"{user.email} lacks the role {wanted} for this page")
    if request.method not in SAFE_METHODS:
        await _check_csrf(request)


def _same_origin(request: Request) -> bool:
    """Browsers say where a request comes from (`Sec-Fetch-Site`, `Origin`); believe them when they do."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    config = console(request).config
    expected = expected_origin(request, public_origin=config.public_origin, trusted=config.trusted_networks)
    try:
        return normalise_origin(origin) == expected
    except ValueError:  # `null`, or anything else that is not an origin
        return False


async def _check_csrf(request: Request) -> None:
    """A state change needs the session's token in the form, and (when the browser says) the same origin."""
    if not _same_origin(request):
        raise CsrfRejected("request refused: it came from another origin")
    session = web_session(request)
    if session is None:
        raise CsrfRejected("form expired: reload the page and try again")
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf_token):
        raise CsrfRejected("request refused: missing or wrong CSRF token (reload the page and try again)")
