"""Build the console app: middleware (body limit, sessions, security headers), the RBAC dependency,
the error pages, and the routers of each role."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.web.config import WebConfig
from console.web.errors import ConsoleError, SignInRequired, TooManyAttempts
from console.web.guard import authorize
from console.web.limits import BodySizeLimit
from console.web.pages import render
from console.web.ratelimit import SignInThrottle
from console.web.sessions import COOKIE_NAME, SessionStore
from console.web.state import ConsoleState
from flows.runtime.errors import USER_FACING
from flows.runtime.retry import is_transient
from flows.runtime.root import Runtime
from governance.errors import GovernanceError, NotFound, PermissionDenied, ValidationFailed

logger = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parent / "templates"

# No inline scripts or styles anywhere: the policy forbids them, so injected markup cannot run (the one
# script is a file from /static, for the review page's player).
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on our own form posts,
    # and the CSRF check could no longer tell them from a sandboxed attacker's.
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-store",
}


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value is HTML-escaped unless a template says otherwise (none does)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["url_for"] = _url_path_for
    return Jinja2Templates(env=env)


@jinja2.pass_context
def _url_path_for(context: dict[str, Any], name: str, /, **path_params: Any) -> str:
    """Links as root-relative paths, so pages work unchanged behind a proxy or on any port."""
    request: Request = context["request"]
    return str(request.app.url_path_for(name, **path_params))


def create_app(runtime: Runtime, config: WebConfig | None = None) -> FastAPI:
    """The console, on top of a flows runtime (its database sessions and object store).

    Uploads are spooled under `<var_dir>/console/uploads`; callers must include that folder in the
    runtime's `allowed_input_dirs` (the CLI does) or batch uploads are refused by the input checks.
    """
    config = config or WebConfig()
    var = Path(runtime.settings.var_dir) / "console"
    state = ConsoleState(
        runtime=runtime,
        config=config,
        sessions=SessionStore(
            secret=config.session_secret,
            idle=timedelta(minutes=config.session_minutes),
            absolute=timedelta(hours=config.session_max_hours),
            clock=config.clock,
        ),
        throttle=SignInThrottle(
            limits={
                "account": config.sign_in_max_failures,
                "client": config.sign_in_max_failures_per_address,
            },
            window=timedelta(seconds=config.sign_in_window_seconds),
            clock=config.clock,
        ),
        templates=_templates(),
        upload_dir=var / "uploads",
        media_cache=var / "media-cache",
    )
    state.upload_dir.mkdir(parents=True, exist_ok=True)
    state.media_cache.mkdir(parents=True, exist_ok=True)

    app = FastAPI(
        title="likeness console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(authorize)],
    )
    app.state.console = state
    _install_session_middleware(app, state)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(SecurityHeaders)  # outermost of ours: the body limit's own 413 gets the headers too
    _install_error_pages(app)

    from console.web.routes import access, audit, compliance, content, media, models, review, users

    for module in (access, review, media, compliance, models, content, audit, users):
        app.include_router(module.router)
    app.include_router(__import__("console.web.motion_plot", fromlist=["router"]).router)
    return app


def _install_session_middleware(app: FastAPI, state: ConsoleState) -> None:
    """Load the session before the route, write the cookie (or clear it) after, add security headers."""

    @app.middleware("http")
    async def sessions(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        cookie = request.cookies.get(COOKIE_NAME)
        request.state.web_session = state.sessions.from_cookie(cookie)
        response = await call_next(request)
        live = getattr(request.state, "web_session", None)
        if live is not None:
            response.set_cookie(
                COOKIE_NAME,
                state.sessions.cookie_value(live),
                max_age=int(state.sessions.idle.total_seconds()),
                httponly=True,
                samesite="strict",
                secure=state.config.secure_cookies,
                path="/",
            )
        elif cookie is not None:
            response.delete_cookie(
                COOKIE_NAME, path="/", httponly=True, samesite="strict", secure=state.config.secure_cookies
            )
        return response


class SecurityHeaders:
    """Pure ASGI middleware adding `SECURITY_HEADERS` (where a response has not set its own) to every
    response that passes through it, error pages and refusals included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for header, value in SECURITY_HEADERS.items():
                    if header not in headers:
                        headers[header] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def _error_status(exc: GovernanceError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, ValidationFailed):
        return 422
    return 409  # consent, review and transition refusals: the request conflicts with the record


def _install_error_pages(app: FastAPI) -> None:
    """Every refusal is a page with one line naming the cause, served with a fitting status."""

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = f"{request.app.url_path_for('sign_in_form')}?{urlencode({'next': request.url.path})}"
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(TooManyAttempts)
    async def _throttled(request: Request, exc: TooManyAttempts) -> Response:
        response = render(request, "error.html", status_code=429, message=str(exc), title="Too many attempts")
        response.headers["retry-after"] = str(exc.retry_after)
        return response

    @app.exception_handler(ConsoleError)
    async def _console_error(request: Request, exc: ConsoleError) -> Response:
        return render(request, "error.html", status_code=exc.status, message=str(exc), title="Refused")

    @app.exception_handler(GovernanceError)
    async def _governance_error(request: Request, exc: GovernanceError) -> Response:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return render(request, "error.html", status_code=_error_status(exc), message=message, title="Refused")

    async def _flow_error(request: Request, exc: Exception) -> Response:
        # Bad media, refused submissions, storage trouble: one line, 503 when trying again may help.
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.warning(
            "request %s %s refused: %s: %s", request.method, request.url.path, type(exc).__name__, message
        )
        status = 503 if is_transient(exc) else 422
        return render(request, "error.html", status_code=status, message=message, title="Refused")

    for kind in USER_FACING:
        if issubclass(kind, Exception) and not issubclass(kind, GovernanceError):
            app.add_exception_handler(kind, _flow_error)

    @app.exception_handler(RequestValidationError)
    async def _bad_form(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error.get("loc", ())[1:]) or "form"
            problems.append(f"{field}: {error.get('msg', 'invalid')}")
        message = "bad input: " + "; ".join(problems)
        return render(request, "error.html", status_code=422, message=message, title="Bad input")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        # Served by Starlette's outermost error middleware, outside ours: the headers are set here.
        logger.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        response = render(
            request,
            "error.html",
            status_code=500,
            title="Error",
            message="internal error: the request could not be completed (it is logged)",
        )
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no page at {request.url.path}"
        return render(request, "error.html", status_code=exc.status_code, message=message, title="Error")


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every route the app serves (walking included routers), for the RBAC table's tests and docs."""
    found: list[APIRoute] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):  # FastAPI >= 0.150 keeps included routers lazily
                walk(list(route.original_router.routes))

    walk(list(app.routes))
    return found
