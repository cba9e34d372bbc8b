"""What every governance command needs: a runtime (settings, sessions), the acting user, one-line errors.

Settings are read here (the CLI is an edge) into a `flows.runtime.root.Runtime`, the one composition root
of the CLI, the console and the workers: it builds each part (engine, store, checks, animator) on first
use, so a governance command that only touches the database loads no media stack. The acting user is always
explicit (`--actor EMAIL`, or `LIKENESS_ACTOR`) and checked against the roles the command needs; a
denial is audited like any other governance refusal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, ProgrammingError

from console.cli.errors import one_line_errors
from console.cli.terminal import make_console
from flows.runtime.root import Runtime
from flows.runtime.settings import load_settings
from governance import consent as consent_rules
from governance.enums import Role
from governance.errors import GovernanceError, ValidationFailed
from governance.migrate import current_revision, head_revision
from governance.schema import User
from governance.uow import unit_of_work
from governance.users import require_role

out = make_console(soft_wrap=True)

ActorOption = Annotated[
    str,
    typer.Option(
        "--actor", envvar="LIKENESS_ACTOR", help="Email of the user acting (checked against roles)."
    ),
]


class CliError(Exception):
    """A problem the CLI reports in one line (database unreachable, not migrated, bad option)."""


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """One-line `error: ...` and exit 1 for every expected failure of a governance command."""
    with one_line_errors(GovernanceError, CliError, ValidationError, OSError):
        try:
            yield
        except (OperationalError, ProgrammingError) as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
            raise CliError(f"database error: {first}") from None


def require_migrated_database(url: str) -> None:
    """Refuse (one line) a database that is not at the newest schema, without creating one that is absent."""
    current, head = current_revision(url), head_revision()
    if current != head:
        raise CliError(
            f"database is at revision {current or 'none'}, expected {head}: run `likeness db upgrade`"
        )


def open_context(*, require_migrated: bool = True) -> Runtime:
    """Read settings and (by default) refuse a database that is not at the newest schema; the runtime
    connects on first use."""
    settings = (
        load_settings()
    )  # a malformed setting is reported by `cli_errors` (console.cli.errors.describe)
    url = settings.database_url
    if require_migrated:
        require_migrated_database(url)
    return Runtime(settings)


@contextlib.contextmanager
def governance_command(*, require_migrated: bool = True) -> Iterator[Runtime]:
    """Runtime for a command body: errors in one line, the engine disposed at the end."""
    with cli_errors():
        ctx = open_context(require_migrated=require_migrated)
        try:
            yield ctx
        finally:
            ctx.close()


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Object-storage failures (unreachable, refused, corrupted upload) as one CLI line."""
    from flows.runtime.errors import PipelineError

    try:
        yield
    except PipelineError as exc:
        raise CliError(
            f"object storage: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
        ) from None


def acting_user(ctx: Runtime, email: str, roles: Iterable[Role], action: str) -> User:
    """The acting user, if they hold one of `roles` (a denial is audited as `access.denied`)."""
    with unit_of_work(ctx.sessions) as session:
        return require_role(session, email=email, roles=roles, action=action)


def parse_time(value: str | None, option: str) -> datetime | None:
    """ISO date or date-time; a value without a zone is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"{option} {value!r} is not an ISO date or date-time (e.g. 2026-01-31 or 2026-01-31T09:00Z)"
        ) from None
    try:  # stored in UTC: 9999-12-31T23:00-05:00 is in the year 10000 there, which no datetime can hold
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise CliError(f"{option} {value!r} is out of range: in UTC it falls after the year 9999") from None


def require_future(value: datetime | None, option: str, *, now: datetime) -> None:
    """Refuse an end of validity that has already passed, naming the option (governance's rule and words)."""
    try:
        consent_rules.require_future(value, now=now, name=option)
    except ValidationFailed as exc:
        raise CliError(str(exc)) from None


def show_time(value: datetime | None) -> str:
    """A timestamp for tables: UTC, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"
