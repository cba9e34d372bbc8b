"""`likeness review`: the reviewer's queue, one job's evidence, and the decision (approve or reject).

A decision goes through `flows.review.apply_decision`, the same code path as the web console and the
Prefect UI form: reviewer role, four eyes and decided-once are enforced by governance, and an approval
publishes the job right away (after consent is verified once more).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from console.commands.batch import flow_errors
from console.context import require_migrated_database
from console.terminal import make_console
from flows.review import apply_decision
from flows.review_queue import ReviewItem, download_render, pending_reviews, review_item
from flows.runtime import Runtime, use_runtime
from flows.settings import load_settings

app = typer.Typer(help="Review flagged jobs: list, show, approve, reject.", no_args_is_help=True)


def console() -> Console:
    """A console sized for the terminal at the time of the call (COLUMNS is read when one is made)."""
    return make_console()


def _runtime() -> Runtime:
    settings = load_settings()
    require_migrated_database(settings.database_url)  # never creates an absent SQLite file
    return Runtime(settings)


@app.command("list")
def list_reviews() -> None:
    """Jobs awaiting review, longest waiting first, with why the policy flagged them."""
    with flow_errors():
        rt = _runtime()
        try:
            items = pending_reviews(rt)
        finally:
            rt.close()
    table = Table(title=f"{len(items)} job(s) awaiting review")
    table.add_column("job", no_wrap=True)
    for column in ("subject", "use", "requested by", "waiting since", "flagged because"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(item.job_id, item.subject, item.use, item.requested_by,
                      item.waiting_since.strftime("%Y-%m-%d %H:%M UTC"), "; ".join(item.reasons) or "-")
    console().print(table)


@app.command("show")
def show(
    job_id: str = typer.Argument(..., help="the job to look at"),
    download: Path | None = typer.Option(None, help="also save the render here to watch it"),
) -> None:
    """Everything the decision rests on: use, scores, reasons, policy version, model, render."""
    with flow_errors():
        rt = _runtime()
        try:
            item = review_item(rt, job_id)
            saved = download_render(rt, item, download) if download is not None else None
        finally:
            rt.close()
    print_item(item)
    if saved is not None:
        console().print(f"render saved to [bold]{saved}[/bold]")


def print_item(item: ReviewItem, *, out: Console | None = None) -> None:
    """A reviewer's view of one job."""
    table = Table(title=f"job {item.job_id} ({item.state})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("subject", item.subject)
    table.add_row("use", item.use)
    table.add_row("requested by", item.requested_by)
    table.add_row("policy", item.policy_version or "-")
    table.add_row("model sha256", item.model_sha256 or "-")
    table.add_row("render", f"{item.output.bucket}/{item.output.key}" if item.output else "-")
    for name, value in sorted(item.scores.items()):
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("flagged because", "; ".join(item.reasons) or "-")
    (out or console()).print(table)


def _decide(job_id: str, reviewer: str, verdict: str, reason: str, publish: bool) -> None:
    with flow_errors():
        rt = _runtime()
        try:
            with use_runtime(rt):
                result = apply_decision(settings_or_runtime=rt, job_id=job_id, reviewer_email=reviewer,
                                        verdict=verdict, reason=reason, publish=publish)
        finally:
            rt.close()
    where = f"; published as {result.published_key}" if result.published_key else ""
    verdict = "approved" if result.verdict == "approve" else "rejected"
    console().print(f"job {result.job_id}: {verdict} by {reviewer}; now [bold]{result.state}[/bold]{where}")


@app.command("approve")
def approve(
    job_id: str = typer.Argument(..., help="the job awaiting review"),
    actor: str = typer.Option(..., "--actor", envvar="LIKENESS_ACTOR", help="e-mail of the reviewer"),
    reason: str = typer.Option(..., help="why (kept with the decision and in the audit log)"),
    publish: bool = typer.Option(True, help="publish right away (else the publish-approved deployment does)"),
) -> None:
    """Approve a flagged job (reviewer role; not your own batch) and publish it."""
    _decide(job_id, actor, "approve", reason, publish)


@app.command("reject")
def reject(
    job_id: str = typer.Argument(..., help="the job awaiting review"),
    actor: str = typer.Option(..., "--actor", envvar="LIKENESS_ACTOR", help="e-mail of the reviewer"),
    reason: str = typer.Option(..., help="why (kept with the decision and in the audit log)"),
) -> None:
    """Reject a flagged job (reviewer role; not your own batch); it is never published."""
    _decide(job_id, actor, "reject", reason, False)
