"""`likeness batch`: submit a batch file, run it, and see what happened to each job."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from console.cli.context import cli_errors, open_context
from console.cli.errors import one_line_errors
from console.cli.terminal import make_console
from flows.batch.batchfile import read_batch_file
from flows.batch.status import BatchReport, batch_report
from flows.batch.submission import submit_batch
from flows.runtime.errors import USER_FACING
from flows.runtime.logs import quiet_prefect_console
from flows.runtime.preflight import preflight
from flows.runtime.root import Runtime, use_runtime

app = typer.Typer(help="Submit batches of jobs, run them, and report on them.", no_args_is_help=True)


def console() -> Console:
    """A console sized for the terminal at the time of the call (COLUMNS is read when one is made)."""
    return make_console()


@contextlib.contextmanager
def flow_errors(*extra: type[BaseException]) -> Iterator[None]:
    """One-line errors for flow commands: refusals, bad inputs, unreachable database or storage."""
    with cli_errors(), one_line_errors(*USER_FACING, *extra):
        yield


STATE_STYLE = {
    "published": "green",
    "approved": "green",
    "awaiting_review": "yellow",
    "rendering": "cyan",
    "rendered": "cyan",
    "publishing": "cyan",
    "submitted": "white",
    "refused": "red",
    "rejected": "red",
    "failed": "red bold",
    "taken_down": "magenta",
}
SCORE_COLUMNS = (
    ("binding_distance", "binding"),
    ("fidelity_mean_distance", "fidelity"),
    ("sharpness_ratio", "sharpness"),
    ("flicker_outlier_ratio", "flicker"),
)


@app.command("submit")
def submit(
    file: Path = typer.Argument(..., help="batch file: .yaml/.yml (name + jobs) or .csv (one job per row)"),
    actor: str = typer.Option(
        ..., "--actor", envvar="LIKENESS_ACTOR", help="e-mail of the submitting operator"
    ),
    name: str | None = typer.Option(None, help="batch name (default: the file's `name`, or its stem)"),
) -> None:
    """Check and store every input, then create the batch and its jobs (consent is checked at render time)."""
    with flow_errors():
        rt = open_context()
        try:
            request = read_batch_file(file, name=name)
            batch_id = submit_batch(rt, request, requested_by_email=actor)
            report = batch_report(rt, batch_id)
        finally:
            rt.close()
    console().print(f"batch [bold]{batch_id}[/bold] submitted with {len(report.jobs)} job(s)")
    print_report(report)


@app.command("run")
def run(
    batch_id: str = typer.Argument(..., help="the batch to run"),
    workers: int = typer.Option(0, min=0, max=64, help="process workers (0: threads in this process)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also print Prefect's run logs on stderr"),
) -> None:
    """Run every unfinished job of the batch now (in this process; a re-run resumes where one stopped).

    What happened to each job is the report at the end (a refusal's or failure's cause on its row), and a
    batch with failed jobs ends with one `error:` line naming them. Prefect's run logs (with the
    tracebacks of technical failures) stay in Prefect's API and UI; `--verbose` prints them here too.
    """
    from flows.batch.flow import BatchIncomplete, batch_flow

    with flow_errors(BatchIncomplete):
        rt = open_context()
        try:
            batch_report(rt, batch_id)  # refuse an unknown batch before starting anything
            preflight(rt)  # policy and checkpoint, once, before any job is claimed
            if not verbose:
                quiet_prefect_console()
            with use_runtime(rt), BatchProgress(rt, batch_id):
                flow = batch_flow(rt.settings, workers=workers)
                state = flow(batch_id=batch_id, return_state=True)  # type: ignore[operator]
            report = batch_report(rt, batch_id)
        finally:
            rt.close()
        print_report(report)
        if not state.is_completed():
            state.result()  # raises the flow's error (BatchIncomplete names the failed jobs)


class BatchProgress:
    """A progress bar of the batch's jobs that reached a resting state, polled from the database."""

    RESTING = frozenset({"awaiting_review", "published", "rejected", "refused", "failed", "taken_down"})

    def __init__(self, rt: Runtime, batch_id: str, *, every: float = 1.0) -> None:
        self.rt, self.batch_id, self.every = rt, batch_id, every
        self._stop = threading.Event()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console(),
            transient=False,
        )

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        self._task = self._progress.add_task(f"batch {self.batch_id[:8]}", total=None)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._update()
            self._stop.wait(self.every)

    def _update(self) -> None:
        try:
            report = batch_report(self.rt, self.batch_id)
        except USER_FACING:
            return
        states = Counter(job.state for job in report.jobs)
        done = sum(count for state, count in states.items() if state in self.RESTING)
        summary = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
        self._progress.update(
            self._task,
            total=len(report.jobs),
            completed=done,
            description=f"batch {self.batch_id[:8]}: {summary}",
        )

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._update()
        self._progress.stop()


@app.command("status")
def status(batch_id: str = typer.Argument(..., help="the batch to report on")) -> None:
    """A table per job: state, scores, outcome, review, published key (or why not)."""
    with flow_errors():
        rt = open_context()
        try:
            report = batch_report(rt, batch_id)
        finally:
            rt.close()
    print_report(report)


def print_report(report: BatchReport, *, out: Console | None = None) -> None:
    """Print a batch report as a Rich table."""
    table = Table(
        title=f"batch {report.name} ({report.batch_id}) requested by {report.requested_by}", show_lines=False
    )
    table.add_column("job", no_wrap=True)
    table.add_column("subject")
    table.add_column("use")
    table.add_column("state")
    for _, label in SCORE_COLUMNS:
        table.add_column(label, justify="right")
    table.add_column("outcome")
    table.add_column("review")
    table.add_column("published key / why not", overflow="fold")
    for job in report.jobs:
        scores = [
            f"{job.scores[key]:.3f}" if isinstance(job.scores.get(key), int | float) else "-"
            for key, _ in SCORE_COLUMNS
        ]
        where = job.published_key or job.last_error or job.reasons or ""
        style = STATE_STYLE.get(job.state, "white")
        table.add_row(
            job.job_id[:8],
            job.subject,
            job.use,
            f"[{style}]{job.state}[/{style}]",
            *scores,
            job.outcome or "-",
            job.reviewer or "-",
            where,
        )
    (out or console()).print(table)
