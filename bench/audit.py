"""Benchmark the audit log: append N events through `governance.audit.record`, then verify the chain.

Runs on a fresh SQLite file and a fresh PostgreSQL database (created and dropped here), prints a Rich
table and writes JSON to bench/results/audit.json.

    python -m bench.audit          # 100,000 events in transactions of 500, plus 2,000 committed one by one
    python -m bench.audit --events 20000 --per-transaction 50 --single-events 500 --backends postgres

Two modes, because they measure different limits. `bulk` appends many events per transaction (a batch
of jobs moving together): it measures the code and the database. `single` commits every event on its
own: it measures the durable-commit latency of the disk (each commit waits for fsync, and appends are
serialised by design, so commits cannot be grouped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from governance import audit
from governance.database import make_engine, make_session_factory
from governance.migrate import upgrade

POSTGRES_URL = os.environ.get("LIKENESS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Result:
    backend: str
    mode: str
    events: int
    per_transaction: int
    append_seconds: float
    appends_per_second: float
    appends_per_cpu_second: float  # this process only (the database server's work is not counted)
    verify_seconds: float
    verified_per_second: float
    verified_per_cpu_second: float  # this process only: what the verifier would do on an idle machine
    chain_ok: bool


def _details(i: int) -> dict[str, object]:
    # Shaped like a real job event: ids, a state change, a few scores.
    return {"from": "rendered", "to": "awaiting_review", "attempt": 1, "i": i,
            "scores": {"binding_distance": 0.031, "colour_drift": 2.5}}  # fmt: skip


def run_backend(backend: str, url: str, events: int, per_transaction: int) -> Result:
    """Append `events` to an empty chain in transactions of `per_transaction`, then verify it."""
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        done = 0
        while done < events:
            size = min(per_transaction, events - done)
            with factory() as session, session.begin():
                for i in range(done, done + size):
                    audit.record(session, action="job.awaiting_review", actor="system:bench", subject_id=str(uuid.uuid4()),
                                 job_id=str(uuid.uuid4()), resource_type="job", resource_id=str(i), details=_details(i))  # fmt: skip
            done += size
        append_seconds = time.perf_counter() - started
        append_cpu = time.process_time() - cpu_started
        started, cpu_started = time.perf_counter(), time.process_time()
        with factory() as session, session.begin():
            report = audit.verify_chain(session)
        verify_seconds = time.perf_counter() - started
        verify_cpu = time.process_time() - cpu_started
    finally:
        engine.dispose()
    mode = "single" if per_transaction == 1 else "bulk"
    return Result(backend, mode, events, per_transaction, round(append_seconds, 3), round(events / append_seconds, 1),
                  round(events / max(append_cpu, 1e-9), 1),
                  round(verify_seconds, 3), round(report.checked / verify_seconds, 1),
                  round(report.checked / max(verify_cpu, 1e-9), 1),
                  report.ok and report.checked == events)  # fmt: skip


def _admin() -> str:
    return make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)


def _run_fresh(backend: str, events: int, per_transaction: int) -> Result:
    """Run on a database of its own: a temporary SQLite file, or a PostgreSQL database created and dropped."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="likeness-bench-") as folder:
            return run_backend(backend, f"sqlite:///{folder}/audit.db", events, per_transaction)
    name = f"likeness_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        return run_backend(backend, url, events, per_transaction)
    finally:
        with psycopg.connect(_admin(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-transaction", type=int, default=500, help="events per transaction in bulk mode")
    parser.add_argument("--single-events", type=int, default=2000, help="events committed one by one (0: skip)")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    console = Console(width=140)
    results: list[Result] = []
    runs = [(args.events, args.per_transaction)] + ([(args.single_events, 1)] if args.single_events else [])
    for backend in args.backends.split(","):
        if backend not in ("sqlite", "postgres"):
            parser.error(f"unknown backend {backend!r}")
        for events, per_transaction in runs:
            console.print(f"[bold]{backend}[/bold]: appending {events:,} events, {per_transaction} per transaction...")
            results.append(_run_fresh(backend, events, per_transaction))
    table = Table("backend", "mode", "events", "per tx", "append s", "appends/s", "appends/CPU-s", "verify s", "verified/s", "verified/CPU-s", "chain ok",
                  title="audit log: append + verify")  # fmt: skip
    for r in results:
        table.add_row(r.backend, r.mode, f"{r.events:,}", str(r.per_transaction), f"{r.append_seconds:.1f}",
                      f"{r.appends_per_second:,.0f}", f"{r.appends_per_cpu_second:,.0f}", f"{r.verify_seconds:.2f}", f"{r.verified_per_second:,.0f}",
                      f"{r.verified_per_cpu_second:,.0f}", "yes" if r.chain_ok else "NO")  # fmt: skip
    console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "audit.json"
    load = os.getloadavg()[0]
    out.write_text(json.dumps({"machine": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                               "load_average_1min_at_end": load, "results": [asdict(r) for r in results]},
                              indent=2))  # fmt: skip
    console.print(f"load average at the end: {load:.1f} on {os.cpu_count()} CPUs (other work slows every figure)")
    console.print(f"written {out}")


if __name__ == "__main__":
    main()
