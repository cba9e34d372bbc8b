"""Turn expected failures into one-line messages and non-zero exit codes, the same way in every command."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from pydantic import ValidationError
from rich.console import Console

err_console = Console(stderr=True)


def _always() -> tuple[type[BaseException], ...]:
    """Errors every command reports in one line, whatever it expects: settings that cannot be parsed."""
    from flows.runtime.settings import SettingsInvalid

    return (SettingsInvalid,)


def describe(exc: BaseException) -> str:
    """The one line an operator needs: the first line of the message, or the field a validation failed on.

    pydantic's own first line ("1 validation error for Settings") names no field; settings errors are
    named by their environment variable so the operator knows what to fix.
    """
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or exc.title
        if exc.title == "Settings":
            field = f"LIKENESS_{field.upper()}"
        return f"invalid {field}: {first['msg']}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def one_line_errors(*expected: type[BaseException]) -> Iterator[None]:
    """Print `error: <message>` on stderr and exit 1 for the expected exception types.

    Unexpected exceptions still surface with a traceback: hiding them would hide bugs.
    """
    types = (*(expected or (ValueError,)), *_always())
    try:
        yield
    except types as exc:  # noqa: B030 - a tuple of exception classes is what we mean
        message = describe(exc)
        err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
