"""`likeness demo run`: the whole product end to end on this machine, printed as it goes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from console.cli.batch import flow_errors, print_report
from console.cli.terminal import make_console
from flows.demo.steps import DemoError, DemoResult, driving_stretch, run_demo
from flows.runtime.settings import load_settings

app = typer.Typer(help="Run the end-to-end demo.", no_args_is_help=True)


def console() -> Console:
    """A console sized for the terminal at the time of the call (COLUMNS is read when one is made)."""
    return make_console()


@app.command("run")
def run(
    root: Path = typer.Option(Path("var/demo"), help="where the demo keeps its state (wiped first)"),
    frames: int | None = typer.Option(
        None, help="animate only the first N frames of the 75-frame driving stretch (a quicker run)"
    ),
) -> None:
    """Start S3, migrate SQLite, register a consenting subject, render, review, publish, verify, audit."""
    with flow_errors(DemoError):
        driving_stretch(frames)  # a bad --frames is refused before anything is printed or touched
        settings = load_settings()
        out = console()
        out.print(Panel.fit(_model_notice(settings.mcnet_checkpoint), title="likeness demo"))
        result = run_demo(
            settings,
            root=root.resolve(),
            on_step=lambda text: out.print(f"[bold cyan]»[/bold cyan] {text}"),
            frames=frames,
        )
    _print_result(result)
    if not result.audit_ok or result.published_copy is None or result.verify_verdict != "published":
        raise typer.Exit(code=1)


def _model_notice(checkpoint: Path | None) -> str:
    if checkpoint is not None:
        return f"model: {checkpoint} (LIKENESS_MCNET_CHECKPOINT)"
    return (
        "model: the DEMO checkpoint in flows/demo/assets: a small MCNet trained on ONE person (the speaker "
        "of the demo clip). It is not a general model; run with LIKENESS_MCNET_CHECKPOINT=/path for a real one."
    )


def _print_result(result: DemoResult) -> None:
    if result.batch is not None:
        print_report(result.batch)
    summary = Table(show_header=False, title="what happened")
    summary.add_column("", style="bold")
    summary.add_column("", overflow="fold")
    summary.add_row(
        "model", f"{result.checkpoint}" + (" (demo model, one person)" if result.demo_model else "")
    )
    for job in result.batch.jobs if result.batch else []:
        outcome = (
            f"{job.state}: {job.published_key}" if job.published_key else f"{job.state}: {job.last_error}"
        )
        summary.add_row(f"job {job.job_id[:8]} ({job.use})", outcome)
    summary.add_row("review", result.review or "no job needed review")
    summary.add_row("published video (S3)", _published_location(result))
    summary.add_row("local copy", str(result.published_copy or "-"))
    summary.add_row(
        "likeness verify",
        f"{result.verify_verdict} {result.verify_details}"
        if result.verify_verdict
        else "- (nothing was published)",
    )
    summary.add_row("likeness audit verify", str(result.audit_message))
    summary.add_row("state", f"{result.var_dir} (database, S3 data, inputs)")
    console().print(summary)
    if result.admin_email and result.admin_password:
        console().print(Panel.fit(console_instructions(result), title="open the console on the demo's data"))


def console_instructions(result: DemoResult) -> str:
    """How to serve the console on the demo's state, and the admin's password (shown this once only)."""
    var = result.var_dir
    return (
        f"export LIKENESS_VAR_DIR={var} LIKENESS_DATABASE_URL=sqlite:///{var / 'likeness.db'} "
        "LIKENESS_S3_BUCKET_PREFIX=likeness-demo\n"
        "likeness storage up && likeness console serve     # then open http://localhost:8765/\n"
        f"sign in as {result.admin_email} with the password {result.admin_password}\n"
        "(printed only now and stored only as a hash: note it, or set a new one with "
        f"`likeness user password {result.admin_email} --actor {result.admin_email}`). "
        "On the Users page the admin sets passwords for the demo's reviewer, operator and compliance accounts."
    )


def _published_location(result: DemoResult) -> str:
    for job in result.batch.jobs if result.batch else []:
        if job.published_key:
            return f"s3://{job.published_bucket}/{job.published_key} (server was {result.s3_endpoint})"
    return "-"
