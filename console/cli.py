"""The `likeness` command: one Typer app that mounts each command group from `console.commands`."""

from __future__ import annotations

import sys

import typer
from typer.exceptions import TyperException

from console.commands import (
    audit,
    batch,
    consent,
    db,
    demo,
    orchestrator,
    publication,
    review,
    storage,
    subject,
    train,
    user,
    verify,
    web,
)
from flows import keep_prefect_offline

app = typer.Typer(
    name="likeness",
    help="Governed talking-head generation: consent, render, check, review, publish, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.add_typer(db.app, name="db")
app.add_typer(user.app, name="user")
app.add_typer(subject.app, name="subject")
app.add_typer(consent.app, name="consent")
app.add_typer(audit.app, name="audit")
app.add_typer(storage.app, name="storage")
app.add_typer(orchestrator.app, name="orchestrator")
app.add_typer(publication.app, name="publication")
app.add_typer(batch.app, name="batch")
app.add_typer(review.app, name="review")
app.add_typer(train.app, name="train")
app.add_typer(web.app, name="console")
app.add_typer(demo.app, name="demo")
verify.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with usage errors reported as one line (`error: ...`, exit 2), like every other error.

    Click's default prints a usage box over several lines; operators and scripts get one line instead,
    and `--help` stays available for the full text.
    """
    keep_prefect_offline()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="likeness", standalone_mode=False)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        return 1
    except TyperException as exc:  # Click's usage errors, vendored by Typer
        if type(exc).__name__ == "NoArgsIsHelpError":
            context = getattr(exc, "ctx", None)
            typer.echo(context.get_help() if context is not None else str(exc))
            return 0
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        typer.echo(f"error: {(message.strip().splitlines() or [type(exc).__name__])[0]}", err=True)
        return int(getattr(exc, "exit_code", 2))
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
