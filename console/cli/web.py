"""`likeness console serve`: the web console for reviewers, compliance, content teams and auditors."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

import typer

from console.cli.errors import one_line_errors

app = typer.Typer(help="The web console (FastAPI, served on 127.0.0.1).", no_args_is_help=True)
logger = logging.getLogger(__name__)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default LIKENESS_CONSOLE_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default LIKENESS_CONSOLE_PORT, 8765).")] = None,
    insecure_cookies: Annotated[
        bool,
        typer.Option(
            "--insecure-cookies", help="Drop the cookies' Secure flag: only for plain HTTP on loopback."
        ),
    ] = False,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Bind a non-loopback address (put TLS in front of it).")
    ] = False,
) -> None:
    """Serve the console until interrupted. Sessions live in memory: a restart signs everyone out."""
    import uvicorn

    from console.web import WebConfig, create_app
    from flows.runtime.root import Runtime
    from flows.runtime.settings import load_settings

    with one_line_errors(ValueError, OSError):
        settings = load_settings()
        bind = host or settings.console_host
        if not _loopback(bind) and not allow_remote:
            raise ValueError(
                f"refusing to bind {bind}: the console serves loopback only unless --allow-remote"
            )
        if not _loopback(bind) and insecure_cookies:
            raise ValueError("--insecure-cookies is only allowed on a loopback address")
        uploads = (settings.var_dir / "console" / "uploads").resolve()
        settings = settings.model_copy(update={"allowed_input_dirs": [*settings.allowed_input_dirs, uploads]})
        secret = (
            settings.console_session_secret.get_secret_value() if settings.console_session_secret else None
        )
        minutes, secure = settings.console_session_minutes, not insecure_cookies
        proxies = tuple(p.strip() for p in settings.console_trusted_proxies.split(",") if p.strip())
        common = {
            "session_minutes": minutes,
            "secure_cookies": secure,
            "trusted_proxies": proxies,
            "public_origin": settings.console_public_origin,
        }
        config = WebConfig(session_secret=secret, **common) if secret else WebConfig(**common)  # type: ignore[arg-type]
        runtime = Runtime(settings)
        web = create_app(runtime, config)
    listen = port or settings.console_port
    shown = "localhost" if _loopback(bind) else bind
    typer.echo(f"likeness console on http://{shown}:{listen}/ (Ctrl-C to stop)")
    if not insecure_cookies and _loopback(bind):
        typer.echo(
            "note: session cookies are Secure: browsers keep them over plain http for `localhost` only "
            "(use that name, --insecure-cookies, or TLS in front)"
        )
    from flows.runtime.orchestrator import ORCHESTRATOR_ERRORS, api_for

    try:
        # The Prefect API for approvals' publications: PREFECT_API_URL, else the local server (started
        # here if it was not running, and then stopped when the console stops: uvicorn turns SIGINT and
        # SIGTERM into a clean return, so this block's exit runs).
        with one_line_errors(*ORCHESTRATOR_ERRORS), api_for(settings) as api:
            typer.echo(f"Prefect API {api.api_url}" + (" (started for this console)" if api.started else ""))
            uvicorn.run(
                web, host=bind, port=listen, log_level="info", proxy_headers=False, server_header=False
            )
    finally:
        runtime.close()
