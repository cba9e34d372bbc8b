"""The `likeness` command: one Typer app whose command groups are loaded only when they are used.

Start-up must stay cheap: `likeness consent list` or `likeness audit verify` must not pay for torch,
Prefect or OpenCV, which only the render, review and training groups need. So the root group knows each
subcommand by name and help text alone (the `COMMANDS` table below) and imports a command's module only
when that command is invoked (or its own `--help` is asked for); `likeness --help` lists every entry
from the table without importing any of them.

Adding a command group is one line in `COMMANDS`:

    "check": ("console.cli.check:app", "Score a render against the policy."),

`module:attribute` names a `typer.Typer`, mounted as a group exactly as `app.add_typer` would (even with
one command, like `console serve`), or a click command, mounted as a top-level command (`verify` exposes
`command = typer.main.get_command(app)` of a one-command Typer); the help text is what `likeness --help` shows and
must be the Typer's own help (tests/console/test_cli_startup.py loads every entry and compares).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import TyperException

from flows import keep_prefect_offline

# name -> ("module:attribute", help shown by `likeness --help`), in the order the help lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "db": ("console.cli.db:app", "Database schema."),
    "user": ("console.cli.user:app", "Users and roles."),
    "subject": ("console.cli.subject:app", "Subjects."),
    "consent": ("console.cli.consent:app", "Consents: versioned, revocable, with evidence."),
    "audit": ("console.cli.audit:app", "The tamper-evident audit log."),
    "storage": ("console.cli.storage:app", "The local S3 server (SeaweedFS on 127.0.0.1)."),
    "orchestrator": (
        "console.cli.orchestrator:app",
        "The local Prefect server (orchestration API on 127.0.0.1).",
    ),
    "publication": ("console.cli.publication:app", "Published videos: list, show, download, take down."),
    "batch": ("console.cli.batch:app", "Submit batches of jobs, run them, and report on them."),
    "review": ("console.cli.review:app", "Review flagged jobs: list, show, approve, reject."),
    "train": ("console.cli.train:app", "Train MCNet on talking-face videos and evaluate checkpoints."),
    "model": (
        "console.cli.model:app",
        "Models: which checkpoints may render, trained on whose consented footage.",
    ),
    "console": ("console.cli.web:app", "The web console (FastAPI, served on 127.0.0.1)."),
    "demo": ("console.cli.demo:app", "Run the end-to-end demo."),
    "check": (
        "console.cli.check:command",
        "Run the identity, artifact, motion and driver-leak checks on a video and show the policy's verdicts.",
    ),
    "verify": (
        "console.cli.verify:command",
        "Check a video's C2PA manifest and watermark, and trace it to its publication (an audited read).",
    ),
}


def load_command(name: str) -> Any:
    """Import the module behind `COMMANDS[name]` and return its click command (group or single command)."""
    target, _ = COMMANDS[name]
    module_name, _, attribute = target.partition(":")
    obj = getattr(importlib.import_module(module_name), attribute)
    command = typer.main.get_group(obj) if isinstance(obj, typer.Typer) else obj
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A Typer group that imports a subcommand's module only when that subcommand is resolved to run.

    While the group formats its own help, it answers with stand-ins that carry the table's help text,
    so listing the commands imports nothing.
    """

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][1])
        command = load_command(cmd_name)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="likeness",
    cls=LazyGroup,
    rich_markup_mode=None,  # plain help for the root: Rich's help renderer alone costs ~0.3 s to import
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """Governed talking-head generation: consent, render, check, review, publish, audit."""


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
    except Exception as exc:
        # A setting read while a command's module is imported (LIKENESS_RETRY_DELAYS, say) fails before
        # the command's own one-line handler is in place; it is still one line. Imported only here,
        # so that commands which never touch settings stay light.
        from console.cli.errors import describe
        from flows.runtime.settings import SettingsInvalid

        if not isinstance(exc, SettingsInvalid):
            raise
        typer.echo(f"error: {describe(exc)}", err=True)
        return 1
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
