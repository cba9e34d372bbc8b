"""Benchmark the audit log: append N events through `governance.audit.record.record`, then verify the chain;
then the Merkle tree: root, signed checkpoint and inclusion proof at growing log sizes.

Runs on a fresh SQLite file and a fresh PostgreSQL database (created and dropped here), prints Rich
tables and writes JSON to bench/results/audit.json.

    python -m bench.audit          # 100,000 events in transactions of 500, plus 2,000 committed one by one,
                                   # then the tree at 100,000 and 1,000,000 events on PostgreSQL
    python -m bench.audit --events 20000 --per-transaction 50 --single-events 500 --backends postgres
    python -m bench.audit --events 0 --single-events 0 --tree-sizes 100000 --tree-backends sqlite,postgres

The tree phase grows one log to each size in turn (appends measured too) and times, at each size:
`tree_head` (the root, streamed in constant memory), a checkpoint (root + Ed25519 signature + a PUT
under compliance lock into the audit bucket of a local SeaweedFS started here), an inclusion proof
for the middle event (its size in hashes and bytes), and `verify_log` (chain + tree + every checkpoint).

Two modes, because they measure different limits. `bulk` appends many events per transaction (a batch
of jobs moving together): it measures the code and the database. `single` commits every event on its
own: it measures the durable-commit latency of the disk (each commit waits for fsync, and appends are
serialised by design, so commits cannot be grouped).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.engine import make_url

from governance.audit import ledger as audit_ledger
from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.audit.note import NoteSigner, sign_checkpoint
from governance.database import make_engine, make_session_factory
from governance.migrate import upgrade
from governance.schema import AuditEvent
from pipeline.storage.audit_store import CheckpointStore
from pipeline.storage.local_s3 import LocalS3Server

POSTGRES_URL = os.environ.get(
    "LIKENESS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RESULTS = Path(__file__).resolve().parent / "results"
T = TypeVar("T")


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
    return {
        "from": "rendered",
        "to": "awaiting_review",
        "attempt": 1,
        "i": i,
        "scores": {"binding_distance": 0.031, "colour_drift": 2.5},
    }


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
                    audit.record(
                        session,
                        action=AuditAction.JOB_AWAITING_REVIEW,
                        actor="system:bench",
                        subject_id=str(uuid.uuid4()),
                        job_id=str(uuid.uuid4()),
                        resource_type="job",
                        resource_id=str(i),
                        details=_details(i),
                    )
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
    return Result(
        backend,
        mode,
        events,
        per_transaction,
        round(append_seconds, 3),
        round(events / append_seconds, 1),
        round(events / max(append_cpu, 1e-9), 1),
        round(verify_seconds, 3),
        round(report.checked / verify_seconds, 1),
        round(report.checked / max(verify_cpu, 1e-9), 1),
        report.ok and report.checked == events,
    )


@dataclass
class TreeResult:
    backend: str
    events: int
    append_seconds: float  # growing the log from the previous size to this one
    appends_per_second: float
    root_seconds: float
    checkpoint_seconds: float  # root + signature + stored under compliance lock
    proof_seconds: float
    proof_hashes: int
    proof_bytes: int
    verify_log_seconds: float
    verified_with_tree_per_second: float
    verified_with_tree_per_cpu_second: float  # this process only
    chain_only_per_second: float  # verify_chain on the same log, same moment: the tree's cost is the ratio
    checkpoints: int
    ok: bool


def _append(factory, start: int, end: int, per_transaction: int) -> None:  # type: ignore[no-untyped-def]
    done = start
    while done < end:
        size = min(per_transaction, end - done)
        with factory() as session, session.begin():
            for i in range(done, done + size):
                audit.record(
                    session,
                    action=AuditAction.JOB_AWAITING_REVIEW,
                    actor="system:bench",
                    subject_id=str(uuid.uuid4()),
                    job_id=str(uuid.uuid4()),
                    resource_type="job",
                    resource_id=str(i),
                    details=_details(i),
                )
        done += size


def run_tree(
    backend: str, url: str, sizes: list[int], per_transaction: int, store: CheckpointStore
) -> list[TreeResult]:
    """Grow one log to each size; at each, time the root, a stored checkpoint, a proof and a full verify."""
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    signer = NoteSigner("bench.likeness/audit", Ed25519PrivateKey.generate())
    results: list[TreeResult] = []
    notes: list[audit_ledger.StoredNote] = []
    have = 0
    try:
        for size in sizes:
            started = time.perf_counter()
            _append(factory, have, size, per_transaction)
            append_seconds = time.perf_counter() - started
            added, have = size - have, size
            started = time.perf_counter()
            with factory() as session, session.begin():
                head = audit_ledger.tree_head(session)
            root_seconds = time.perf_counter() - started
            started = time.perf_counter()
            with factory() as session, session.begin():
                head = audit_ledger.tree_head(session)
            note = sign_checkpoint(signer, head.size, head.root)
            stored = store.put_checkpoint(head.size, note, retain_days=1)
            checkpoint_seconds = time.perf_counter() - started
            notes.append(audit_ledger.StoredNote(stored.label if stored else str(size), note))
            middle = size // 2
            started = time.perf_counter()
            with factory() as session, session.begin():
                event_id = str(session.scalar(select(AuditEvent.id).where(AuditEvent.seq == middle)))
                proof = audit_ledger.prove_inclusion(session, event_id=event_id, seq=middle, size=size)
            proof_seconds = time.perf_counter() - started
            started, cpu_started = time.perf_counter(), time.process_time()
            with factory() as session, session.begin():
                report = audit_ledger.verify_log(session, notes, signer.verifier)
            verify_seconds, verify_cpu = time.perf_counter() - started, time.process_time() - cpu_started
            started = time.perf_counter()
            with factory() as session, session.begin():
                chain = audit.verify_chain(session)
            chain_seconds = time.perf_counter() - started
            results.append(
                TreeResult(
                    backend,
                    size,
                    round(append_seconds, 2),
                    round(added / max(append_seconds, 1e-9), 1),
                    round(root_seconds, 3),
                    round(checkpoint_seconds, 3),
                    round(proof_seconds, 3),
                    len(proof.path),
                    32 * len(proof.path),
                    round(verify_seconds, 3),
                    round(report.checked / max(verify_seconds, 1e-9), 1),
                    round(report.checked / max(verify_cpu, 1e-9), 1),
                    round(chain.checked / max(chain_seconds, 1e-9), 1),
                    report.checkpoints,
                    report.ok and report.checked == size and proof.root == head.root,
                )
            )
    finally:
        engine.dispose()
    return results


def _admin() -> str:
    return make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)


def _run_fresh(backend: str, run: Callable[[str, str], T]) -> T:
    """Run on a database of its own: a temporary SQLite file, or a PostgreSQL database created and dropped."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="likeness-bench-") as folder:
            return run(backend, f"sqlite:///{folder}/audit.db")
    name = f"likeness_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        return run(backend, url)
    finally:
        with psycopg.connect(_admin(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tree_phase(
    backends: list[str], sizes: list[int], per_transaction: int, console: Console
) -> list[TreeResult]:
    """The tree measurements, against a SeaweedFS of their own (object lock, compliance retention)."""
    results: list[TreeResult] = []
    with tempfile.TemporaryDirectory(prefix="likeness-bench-s3-") as folder:
        server = LocalS3Server(Path(folder), access_key="bench", secret_key="bench-secret-0123456789")
        state = server.start(timeout=90.0)
        try:
            store = CheckpointStore(
                state.endpoint,
                access_key="bench",
                secret_key="bench-secret-0123456789",
                bucket_prefix=f"bench{uuid.uuid4().hex[:8]}",
            )
            for backend in backends:
                console.print(
                    f"[bold]{backend}[/bold]: tree at {', '.join(f'{n:,}' for n in sizes)} events..."
                )
                results += _run_fresh(backend, lambda b, url: run_tree(b, url, sizes, per_transaction, store))
        finally:
            server.stop(grace=30.0)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--per-transaction", type=int, default=500, help="events per transaction in bulk mode"
    )
    parser.add_argument(
        "--single-events", type=int, default=2000, help="events committed one by one (0: skip)"
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--tree-sizes", default="100000,1000000", help="log sizes for the tree phase ('' skips)"
    )
    parser.add_argument("--tree-backends", default="postgres")
    args = parser.parse_args()
    console = Console(width=140)
    results: list[Result] = []
    runs = ([(args.events, args.per_transaction)] if args.events else []) + (
        [(args.single_events, 1)] if args.single_events else []
    )
    for backend in args.backends.split(","):
        if backend not in ("sqlite", "postgres"):
            parser.error(f"unknown backend {backend!r}")
        for events, per_transaction in runs:
            console.print(
                f"[bold]{backend}[/bold]: appending {events:,} events, {per_transaction} per transaction..."
            )
            results.append(
                _run_fresh(
                    backend, functools.partial(run_backend, events=events, per_transaction=per_transaction)
                )
            )
    table = Table(
        "backend",
        "mode",
        "events",
        "per tx",
        "append s",
        "appends/s",
        "appends/CPU-s",
        "verify s",
        "verified/s",
        "verified/CPU-s",
        "chain ok",
        title="audit log: append + verify",
    )
    for r in results:
        table.add_row(
            r.backend,
            r.mode,
            f"{r.events:,}",
            str(r.per_transaction),
            f"{r.append_seconds:.1f}",
            f"{r.appends_per_second:,.0f}",
            f"{r.appends_per_cpu_second:,.0f}",
            f"{r.verify_seconds:.2f}",
            f"{r.verified_per_second:,.0f}",
            f"{r.verified_per_cpu_second:,.0f}",
            "yes" if r.chain_ok else "NO",
        )
    console.print(table)
    sizes = [int(n) for n in args.tree_sizes.split(",") if n.strip()]
    trees = _tree_phase(args.tree_backends.split(","), sizes, args.per_transaction, console) if sizes else []
    tree_table = Table(
        "backend",
        "events",
        "appends/s",
        "root s",
        "checkpoint s",
        "proof s",
        "proof hashes",
        "proof bytes",
        "verify_log s",
        "verified/s",
        "verified/CPU-s",
        "chain-only/s",
        "checkpoints",
        "ok",
        title="audit tree: root, signed checkpoint, inclusion proof, full verify",
    )
    for t in trees:
        tree_table.add_row(
            t.backend,
            f"{t.events:,}",
            f"{t.appends_per_second:,.0f}",
            f"{t.root_seconds:.2f}",
            f"{t.checkpoint_seconds:.2f}",
            f"{t.proof_seconds:.2f}",
            str(t.proof_hashes),
            str(t.proof_bytes),
            f"{t.verify_log_seconds:.2f}",
            f"{t.verified_with_tree_per_second:,.0f}",
            f"{t.verified_with_tree_per_cpu_second:,.0f}",
            f"{t.chain_only_per_second:,.0f}",
            str(t.checkpoints),
            "yes" if t.ok else "NO",
        )
    if trees:
        console.print(tree_table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "audit.json"
    load = os.getloadavg()[0]
    out.write_text(
        json.dumps(
            {
                "machine": platform.node(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_1min_at_end": load,
                "results": [asdict(r) for r in results],
                "tree": [asdict(t) for t in trees],
            },
            indent=2,
        )
    )
    console.print(
        f"load average at the end: {load:.1f} on {os.cpu_count()} CPUs (other work slows every figure)"
    )
    console.print(f"written {out}")


if __name__ == "__main__":
    main()
