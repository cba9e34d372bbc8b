"""`likeness review`: the reviewer's queue, one job's evidence, and the decision (approve or reject).

A decision goes through `flows.review.steps.apply_decision`, the same code path as the web console: reviewer
role, four eyes and decided-once are enforced by governance, and an approval queues the job's publication
(consent is verified once more); with the local runner this command waits for it and says how it went.
An approval that delivery then refuses (consent revoked or narrowed while the job waited) exits 1 with
one line naming the consent and what no longer covers the use. `list` and `show` need `--actor`
(reviewer or auditor): each read, and each `--download` of a render, is audited as `access.read`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from console.cli.batch import flow_errors
from console.cli.context import open_context
from console.cli.terminal import make_console
from flows.publish.queue import publish_status
from flows.publish.steps import existing_publication
from flows.review.queue import ReviewItem, download_render, pending_reviews, review_item
from flows.review.steps import apply_decision
from flows.runtime.logs import quiet_prefect_console
from flows.runtime.root import Runtime, use_runtime
from governance import consent, jobs
from governance.access import record_read
from governance.enums import JobState, Role
from governance.uow import unit_of_work
from governance.users import require_role

app = typer.Typer(help="Review flagged jobs: list, show, approve, reject.", no_args_is_help=True)
READERS = (Role.reviewer, Role.auditor)  # as the console's review pages and media (reviewers; auditors read)


def console() -> Console:
    """A console sized for the terminal at the time of the call (COLUMNS is read when one is made)."""
    return make_console()


def _record_read(
    rt: Runtime, actor: str, what: str, *, job_id: str | None = None, details: dict[str, Any] | None = None
) -> None:
    """The reviewer's read of personal data is on record (`access.read`); a reader without the role is refused."""
    with unit_of_work(rt.sessions) as session:
        subject_id = jobs.get_job(session, job_id).subject_id if job_id is not None else None
        record_read(
            session,
            actor_email=actor,
            roles=READERS,
            what=what,
            resource_type="job" if job_id else None,
            resource_id=job_id,
            subject_id=subject_id,
            job_id=job_id,
            details=details,
        )


@app.command("list")
def list_reviews(
    actor: str = typer.Option(
        ..., "--actor", envvar="LIKENESS_ACTOR", help="e-mail of the reviewer (or auditor)"
    ),
) -> None:
    """Jobs awaiting review, longest waiting first, with why the policy flagged them (an audited read)."""
    with flow_errors():
        rt = open_context()  # never creates an absent SQLite file
        try:
            with unit_of_work(rt.sessions) as session:  # refuse before reading anything
                require_role(session, email=actor, roles=READERS, action="review.list")
            items = pending_reviews(rt)
            _record_read(rt, actor, "review.list", details={"jobs": [item.job_id for item in items]})
        finally:
            rt.close()
    table = Table(title=f"{len(items)} job(s) awaiting review")
    table.add_column("job", no_wrap=True)
    for column in ("subject", "use", "requested by", "waiting since", "flagged because"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            item.job_id,
            item.subject,
            item.use,
            item.requested_by,
            item.waiting_since.strftime("%Y-%m-%d %H:%M UTC"),
            "; ".join(item.reasons) or "-",
        )
    console().print(table)


@app.command("show")
def show(
    job_id: str = typer.Argument(..., help="the job to look at"),
    actor: str = typer.Option(
        ..., "--actor", envvar="LIKENESS_ACTOR", help="e-mail of the reviewer (or auditor)"
    ),
    download: Path | None = typer.Option(None, help="also save the render here to watch it"),
) -> None:
    """Everything the decision rests on: use, scores, reasons, policy version, model, render (an audited read)."""
    with flow_errors():
        rt = open_context()
        try:
            with unit_of_work(rt.sessions) as session:  # refuse before reading anything
                require_role(session, email=actor, roles=READERS, action="review.show")
            item = review_item(rt, job_id)
            saved = download_render(rt, item, download) if download is not None else None
            media = (
                {
                    "render": {
                        "bucket": item.output.bucket,
                        "key": item.output.key,
                        "sha256": item.output.sha256,
                    }
                }
                if saved is not None and item.output is not None
                else {}
            )
            _record_read(
                rt,
                actor,
                "review.download" if saved is not None else "review.show",
                job_id=item.job_id,
                details=media,
            )
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
        rt = open_context()
        quiet_prefect_console()  # a local publish run's logs (and tracebacks) stay in Prefect's API
        try:
            with use_runtime(rt):
                result = apply_decision(
                    rt=rt,
                    job_id=job_id,
                    reviewer_email=reviewer,
                    verdict=verdict,
                    reason=reason,
                    publish=publish,
                )
            past = "approved" if result.verdict == "approve" else "rejected"
            ticket = result.publishing
            if ticket is not None and ticket.mode != "deployment":
                ticket.wait()  # the local runner: this process publishes before it exits
            state = _job_state(rt, result.job_id)
            if state == JobState.refused.value:
                raise ApprovalRefused(
                    f"job {result.job_id} approved by {reviewer} but refused before publishing: "
                    f"{refusal_reason(rt, result.job_id)}"
                )
            console().print(f"job {result.job_id}: {past} by {reviewer}; now [bold]{state}[/bold]")
            if ticket is not None:
                if ticket.mode == "deployment":
                    console().print(f"publishing queued as flow run {ticket.flow_run_id}")
                    return
                status = publish_status(rt, job_id)
                if status.error:  # the decision stands; the publication failed: one line, exit 1
                    raise PublishFailed(
                        f"job {job_id} approved, but publishing failed: {status.error}; "
                        f"retry with `likeness review retry-publish {job_id}`"
                    )
                key = existing_publication(rt, job_id)
                where = f" as {key}" if key else ""
                console().print(f"publication: [bold]{status.state}[/bold]{where}")
        finally:
            rt.close()


def _job_state(rt: Runtime, job_id: str) -> str:
    """The job's state now (after the local publication, when one ran)."""
    with unit_of_work(rt.sessions) as session:
        return JobState(jobs.get_job(session, job_id).state).value


class PublishFailed(ValueError):
    """The approval was recorded but its local publication failed (storage down...): exit 1, retryable."""


class ApprovalRefused(ValueError):
    """An approved job was refused at publishing (its consent revoked or narrowed meanwhile): exit 1."""


def refusal_reason(rt: Runtime, job_id: str) -> str:
    """Why a job was refused: which consent, and what of it no longer covers the job's use."""
    with unit_of_work(rt.sessions) as session:
        job = jobs.get_job(session, job_id)
        why = (
            consent.lapse(
                session,
                consent_id=job.consent_id,
                purpose=job.purpose,
                channel=job.channel,
                territory=job.territory,
            )
            if job.consent_id
            else None
        )
        use = f"{job.purpose}/{job.channel}/{job.territory}"
        return f"{why} (the job's use is {use})" if why else (job.last_error or "refused")


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


@app.command("retry-publish")
def retry_publish_command(
    job_id: str = typer.Argument(..., help="the approved job whose publication failed"),
    actor: str = typer.Option(..., "--actor", envvar="LIKENESS_ACTOR", help="e-mail of who asks for it"),
) -> None:
    """Queue a failed publication again (the publish-approved sweep does the same on its schedule)."""
    from flows.publish.queue import retry_publish

    with flow_errors():
        rt = open_context()
        quiet_prefect_console()
        try:
            with use_runtime(rt):
                ticket = retry_publish(rt, job_id, requested_by=actor)
                ticket.wait()
                status = publish_status(rt, job_id)
        finally:
            rt.close()
    console().print(
        f"job {job_id}: publication [bold]{status.state}[/bold]"
        + (f" ({status.error})" if status.error else "")
    )
