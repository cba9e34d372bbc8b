"""Sign-in, sign-out, the home page and the stylesheet."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from console.web.errors import TooManyAttempts
from console.web.pages import redirect, render
from console.web.proxy import client_address
from console.web.state import console, current_user, web_session
from governance.errors import AuthenticationFailed, ValidationFailed
from governance.uow import unit_of_work
from governance.users import authenticate, record_sign_in, record_sign_in_failed

router = APIRouter()
STATIC = Path(__file__).resolve().parents[1] / "static"
STYLESHEET = STATIC / "console.css"


@router.get("/static/console.css", name="stylesheet")
def stylesheet() -> FileResponse:
    """The one stylesheet (no inline styles: the content security policy forbids them)."""
    return FileResponse(STYLESHEET, media_type="text/css", headers={"cache-control": "public, max-age=3600"})


@router.get("/static/review.js", name="review_script")
def review_script() -> FileResponse:
    """The review page's player, plot and keyboard controls (a file: the policy allows no inline script)."""
    return FileResponse(
        STATIC / "review.js", media_type="text/javascript", headers={"cache-control": "public, max-age=3600"}
    )


@router.get("/sign-in", name="sign_in_form", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str = "/") -> Response:
    """The sign-in form; an anonymous session is opened so the form carries a CSRF token."""
    state = console(request)
    if web_session(request) is None:
        request.state.web_session = state.sessions.create()
    return render(request, "sign_in.html", next=_safe_next(next), email="")


def _safe_next(target: str) -> str:
    """Only a path on this site: an open redirect after sign-in would be a phishing aid.

    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so `/<TAB>/evil.example`
    and `/<BACKSLASH>evil.example` both mean `//evil.example`; any control character, any backslash, a scheme or
    a host, or a leading `//` sends the user home instead. What passes is re-quoted so the Location
    header carries nothing a browser could read differently.
    """
    if len(target) > 2000:
        return "/"
    for form in (target, unquote(target)):  # percent-encoded tricks are refused as well
        if (
            not form.startswith("/")
            or form.startswith("//")
            or "\\" in form
            or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in form)
        ):
            return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/"
    path = quote(parts.path, safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="=&%/:@!$'()*+,;-._~")
    return path + (f"?{query}" if query else "")


def _client(request: Request) -> str:
    return client_address(request, console(request).config.trusted_networks)


def _check_password(request: Request, email: str, password: str) -> str | None:
    """The user id for a right password, else None; a failure is written to the audit log."""
    sessions = console(request).runtime.sessions
    try:
        with unit_of_work(sessions) as db:
            user = authenticate(db, email=email, password=password)
            record_sign_in(db, user, client=_client(request), via="console")
            return user.id
    except AuthenticationFailed:
        with unit_of_work(sessions) as db:
            record_sign_in_failed(db, email=email, client=_client(request), via="console")
        return None


@router.post("/sign-in", name="sign_in", response_class=HTMLResponse)
async def sign_in(
    request: Request,
    email: str = Form(max_length=320),
    password: str = Form(max_length=1024),
    next: str = Form("/"),
) -> Response:
    """Check the password (argon2id, in governance), throttle failures, rotate the session on success."""
    state = console(request)
    account_key, client_key = f"account:{email.strip().lower()}", f"client:{_client(request)}"
    wait = state.throttle.retry_after(account_key, client_key)
    if wait:
        raise TooManyAttempts(f"too many failed sign-ins: try again in {wait} s", retry_after=wait)
    try:
        user_id = await run_in_threadpool(_check_password, request, email, password)
    except ValidationFailed:
        user_id = None
    if user_id is None:
        state.throttle.failed(account_key, client_key)
        return render(
            request,
            "sign_in.html",
            status_code=401,
            next=_safe_next(next),
            email=email,
            error="sign-in failed: unknown email or wrong password",
        )
    state.throttle.succeeded(account_key)
    request.state.web_session = state.sessions.rotate(web_session(request), user_id)
    response = redirect(request, "home")
    response.headers["location"] = _safe_next(next)
    return response


@router.post("/sign-out", name="sign_out")
def sign_out(request: Request) -> Response:
    """End the session on the server (the cookie is cleared too)."""
    session = web_session(request)
    if session is not None:
        console(request).sessions.drop(session)
    request.state.web_session = None
    return redirect(request, "sign_in_form")


@router.get("/", name="home", response_class=HTMLResponse)
def home(request: Request) -> Response:
    """What the signed-in user can do, by role."""
    return render(request, "home.html", me=current_user(request))
