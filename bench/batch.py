"""Benchmark of the batch pipeline around the model, on real services (SeaweedFS, SQLite, ffmpeg, Prefect).

(1) Overhead: one job with a 10-second driving clip through the real render step (fetch inputs from S3,
    decode, face crops, MCNet, H.264 encode, upload, database). The model's own time is measured around
    each batch of forward passes (the driving frames are decoded and cropped before that clock starts),
    and everything else is reported as a percentage of it. Target: at most 15 %.
(2) Throughput: a batch of N jobs (tiny random MCNet) run by `nightly_batch` on 1 and on 2 process
    workers, against a real project-local Prefect server (`flows.runtime.orchestrator.LocalPrefectServer`, the
    `gpu` limit created with as many slots as workers); jobs per minute and the ratio. On a 2-core machine
    shared with other work, expect well under 2x.
(2b) The same batch as deployments: `nightly-batch` hands one `render-job` deployment run per job to the
    `gpu` pool, on one and on two `prefect worker start` processes (`bench/deployed_batch.py`).
(3) Approve latency: the web console's approve request (`POST /review/jobs/{id}/decision`, a signed-in
    reviewer, real app and database) until its response, against the time until the queued publication
    has ended; deciding no longer waits for publishing.

    python -m bench.batch --jobs 4 --overhead-model demo
    LIKENESS_MCNET_CHECKPOINT=/path python -m bench.batch --overhead-model configured

Prints a Rich table and writes JSON to bench/results/batch-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLIP = ROOT / "flows" / "demo" / "assets" / "talking_man_192.mp4"
ACCESS, SECRET = "bench", "bench-secret-0123456789"


@dataclass
class Overhead:
    """Where the time of one render step went."""

    model: str
    frames: int
    resolution: int
    total_s: float
    model_s: float
    overhead_s: float
    overhead_pct: float
    breakdown: dict[str, float]


@dataclass
class Throughput:
    """A batch on `workers` processes."""

    workers: int
    jobs: int
    wall_s: float
    jobs_per_min: float


class _Clock:
    """Accumulates the time spent inside the model's forward passes of one render."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def timed_render(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        while True:
            start = time.perf_counter()
            try:
                frame = next(frames)
            except StopIteration:
                self.seconds += time.perf_counter() - start
                return
            self.seconds += time.perf_counter() - start
            yield frame


@dataclass
class World:
    """A runtime on a local S3 server and a fresh SQLite database, with a consenting subject."""

    rt: Any
    server: Any
    batch_file: Path

    def close(self) -> None:
        self.rt.close()
        self.server.stop(grace=30.0)


def _loose_policy(path: Path) -> None:
    """Every output check passes (a random tiny model's output would not): the batch runs to publication."""
    import yaml

    from governance.policy import DEFAULT_POLICY_PATH

    rules = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    rules["name"] = "bench-loose"
    for group in ("identity", "artifacts"):
        for name, bounds in rules[group].items():
            if name != "binding_distance":
                for key in bounds:
                    bounds[key] = 0.0 if key.endswith("_below") else (1.0 if "ratio" in name else 1.0e6)
    for group in ("motion", "leak"):  # a tiny random model moves nothing: leave motion unjudged
        rules.pop(group, None)
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")


def _world(root: Path, checkpoint: Path, *, driving_frames: range) -> World:
    """Start S3, migrate SQLite, seed a consenting subject and write a batch file."""
    from flows.demo import steps as demo
    from flows.runtime.root import Runtime
    from flows.runtime.settings import Settings
    from governance.migrate import upgrade
    from pipeline.storage.local_s3 import LocalS3Server

    server = LocalS3Server(root / "s3", access_key=ACCESS, secret_key=SECRET)
    state = server.start(timeout=90.0)
    settings = Settings(
        var_dir=root / "var",
        database_url=f"sqlite:///{root / 'bench.db'}",
        s3_endpoint=state.endpoint,
        s3_access_key=ACCESS,
        s3_secret_key=SECRET,
        s3_bucket_prefix="bench",
        mcnet_checkpoint=checkpoint,
        allowed_input_dirs=[root / "inputs"],
        policy_path=root / "policy.yaml",
    )
    upgrade(settings.database_url)
    _loose_policy(root / "policy.yaml")
    inputs = demo.extract_inputs(CLIP, root / "inputs", driving=driving_frames)
    evidence = root / "inputs" / "consent.txt"
    evidence.write_text("bench consent\n", encoding="utf-8")
    rt = Runtime(settings)
    subject_id = demo.seed_people(rt, inputs, evidence)
    demo.register_model(rt, subject_id, demo_model=False)  # only a registered model renders
    return World(rt=rt, server=server, batch_file=demo.write_batch_file(root / "inputs", inputs))


def _submit(rt: Any, batch_file: Path, jobs: int) -> str:
    import yaml

    from flows.batch.batchfile import read_batch_file
    from flows.batch.submission import submit_batch
    from flows.demo import steps as demo

    data = yaml.safe_load(batch_file.read_text(encoding="utf-8"))
    # Only the covered use, so every job renders; a seed each, since a batch refuses the same request twice.
    data["jobs"] = [{**data["jobs"][0], "seed": index} for index in range(jobs)]
    path = batch_file.with_name(f"bench-{jobs}-{time.monotonic_ns()}.yaml")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return submit_batch(rt, read_batch_file(path), requested_by_email=demo.OPERATOR)


def measure_overhead(checkpoint: Path, label: str) -> Overhead:
    """One 10-second job through the real render step, the model's forward passes timed separately."""
    from flows.render import steps as render_steps
    from flows.runtime.root import use_runtime
    from governance import batches
    from governance import jobs as job_service
    from governance.uow import unit_of_work

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        world = _world(Path(tmp), checkpoint, driving_frames=range(100, 350))  # 250 frames = 10 s
        rt = world.rt
        try:
            batch_id = _submit(rt, world.batch_file, 1)
            with unit_of_work(rt.sessions) as session:
                job_id = batches.jobs_of_batch(session, batch_id)[0].id
                job_service.claim(
                    session,
                    job_service.get_job(session, job_id),
                    to="rendering",
                    flow_run_id="bench",
                    actor="system:bench",
                )
            animator = rt.animator  # load the model before the clock starts
            clock = _Clock()
            real_render = animator.render

            phases: dict[str, float] = {}

            def render(
                source: np.ndarray, driving: Iterable[np.ndarray], **kwargs: Any
            ) -> Iterator[np.ndarray]:
                start = time.perf_counter()
                crops = list(driving)  # decode + crop outside the model clock (counted as overhead)
                phases["driving: decode + crop (render pass)"] = time.perf_counter() - start
                return clock.timed_render(real_render(source, crops, **kwargs))

            animator.render = render
            with use_runtime(rt), _local_gpu_limit(), _timed_phases(phases):
                start = time.perf_counter()
                render_steps.render_video(rt, job_id)
                total = time.perf_counter() - start
            size = animator.config.image_size
        finally:
            world.close()
    overhead = total - clock.seconds
    return Overhead(
        model=label,
        frames=250,
        resolution=size,
        total_s=round(total, 2),
        model_s=round(clock.seconds, 2),
        overhead_s=round(overhead, 2),
        overhead_pct=round(100 * overhead / clock.seconds, 1),
        breakdown={k: round(v, 2) for k, v in phases.items()},
    )


# Where the time outside the model goes: (label, module, attribute) of the library calls the step makes.
PHASES = (
    ("fetch inputs from S3 (+sha256)", "flows.jobs.data", "fetch"),
    ("portrait: face detection + crop", "pipeline.faces.portrait", "prepare_portrait"),
    ("driving: face tracking pass", "pipeline.faces.portrait", "crop_driving"),
    ("paste back into the portrait", "pipeline.faces.portrait", "compose_output"),
    ("H.264 encode (pipe writes)", "pipeline.video.writer", "VideoWriter.write"),
    ("H.264 encode (finish + audio mux)", "pipeline.video.writer", "VideoWriter.__exit__"),
    ("upload to quarantine (verified)", "pipeline.storage.objects", "ObjectStore.put_file"),
    ("database (record + audit)", "governance.jobs", "record_render"),
)


@contextlib.contextmanager
def _timed_phases(totals: dict[str, float]) -> Iterator[None]:
    """Wrap each phase's function with a clock (restored afterwards); the wrappers cost microseconds."""
    import importlib

    undo: list[tuple[object, str, object]] = []

    def clocked(label: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                totals[label] = totals.get(label, 0.0) + time.perf_counter() - start

        return wrapper

    for label, module_name, attribute in PHASES:
        owner: object = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        real = getattr(owner, name)
        undo.append((owner, name, real))
        setattr(owner, name, clocked(label, real))
    try:
        yield
    finally:
        for owner, name, real in reversed(undo):
            setattr(owner, name, real)


@contextlib.contextmanager
def _local_gpu_limit(slots: int = 1) -> Iterator[None]:
    """A fresh project-local Prefect server (as `likeness orchestrator up` runs it) with a `gpu` limit of
    `slots`: the limit is the operator's, so the benchmark creates it on a server of its own."""
    from flows.runtime.concurrency import ensure_gpu_limit
    from flows.runtime.orchestrator import LocalPrefectServer, serving

    with (
        tempfile.TemporaryDirectory(prefix="bench-prefect-") as tmp,
        serving(LocalPrefectServer(Path(tmp), port=0), timeout=240),
    ):
        ensure_gpu_limit(slots)
        yield


def measure_throughput(checkpoint: Path, jobs: int, workers: int) -> Throughput:
    """N jobs (2 s clips) through `nightly_batch` on `workers` processes (0 = threads)."""
    from flows.batch.flow import batch_flow
    from flows.runtime.root import use_runtime

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        world = _world(Path(tmp), checkpoint, driving_frames=range(300, 350))
        rt = world.rt
        try:
            batch_id = _submit(rt, world.batch_file, jobs)
            with use_runtime(rt), _local_gpu_limit(max(1, workers)):
                flow = batch_flow(rt.settings, workers=workers)
                start = time.perf_counter()
                results = flow(batch_id=batch_id)  # type: ignore[operator]
                wall = time.perf_counter() - start
            assert all(state == "published" for state in results.values()), results
        finally:
            world.close()
    return Throughput(
        workers=workers, jobs=jobs, wall_s=round(wall, 1), jobs_per_min=round(60 * jobs / wall, 2)
    )


@dataclass
class ApproveLatency:
    """The console's approve request, and the publication it queued."""

    approvals: int
    response_s_median: float
    response_s_max: float
    published_after_s_median: float


def measure_approve_latency(checkpoint: Path, approvals: int = 3) -> ApproveLatency:
    """Render `approvals` jobs to `awaiting_review`, then approve each through the console over HTTP."""
    import re
    import statistics

    import yaml
    from fastapi.testclient import TestClient

    from console.web import WebConfig, create_app
    from flows.batch.flow import batch_flow
    from flows.publish.queue import publish_status
    from flows.review.queue import pending_reviews
    from flows.runtime.root import use_runtime
    from governance import users
    from governance.uow import unit_of_work

    password = "bench reviewer password 0123"
    with tempfile.TemporaryDirectory(prefix="bench-approve-") as tmp:
        world = _world(Path(tmp), checkpoint, driving_frames=range(300, 325))
        rt = world.rt
        try:
            policy = yaml.safe_load(Path(rt.settings.policy_path).read_text(encoding="utf-8"))
            policy["always_review"] = True
            Path(rt.settings.policy_path).write_text(yaml.safe_dump(policy), encoding="utf-8")
            with unit_of_work(rt.sessions) as session:
                users.add_user(
                    session,
                    email="bench-reviewer@example.org",
                    roles=["reviewer"],
                    actor="system:bench",
                    password=password,
                )
            batch_id = _submit(rt, world.batch_file, approvals)
            responses: list[float] = []
            published: list[float] = []
            with use_runtime(rt), _local_gpu_limit(1):
                batch_flow(rt.settings)(batch_id=batch_id)  # type: ignore[operator]
                waiting = [item.job_id for item in pending_reviews(rt) if item.batch_id == batch_id]
                client = TestClient(
                    create_app(rt, WebConfig()), base_url="https://testserver", follow_redirects=False
                )
                token = re.compile(r'name="csrf_token" value="([^"]+)"')
                page = client.get("/sign-in").text
                client.post(
                    "/sign-in",
                    data={
                        "email": "bench-reviewer@example.org",
                        "password": password,
                        # A page without the token stops the bench with this AttributeError.
                        "csrf_token": token.search(page).group(1),  # type: ignore[union-attr]
                    },
                )
                for job_id in waiting:
                    csrf = token.search(client.get(f"/review/jobs/{job_id}").text).group(1)  # type: ignore[union-attr]
                    start = time.perf_counter()
                    answer = client.post(
                        f"/review/jobs/{job_id}/decision",
                        data={"verdict": "approve", "reason": "bench", "csrf_token": csrf},
                    )
                    responses.append(time.perf_counter() - start)
                    assert answer.status_code == 303, answer.text[-500:]
                    while publish_status(rt, job_id).state not in ("published", "failed"):
                        time.sleep(0.05)
                    published.append(time.perf_counter() - start)
                    assert publish_status(rt, job_id).state == "published"
                client.close()
                # The job is published before its publish-job run has reported its own end: let those
                # threads finish while the server they report to is still up.
                for thread in threading.enumerate():
                    if thread.name.startswith("publish-"):
                        thread.join(timeout=120)
        finally:
            world.close()
    return ApproveLatency(
        approvals=len(responses),
        response_s_median=round(statistics.median(responses), 3),
        response_s_max=round(max(responses), 3),
        published_after_s_median=round(statistics.median(published), 2),
    )


def tiny_checkpoint(folder: Path) -> Path:
    """A seeded random tiny MCNet (the batch throughput is about the pipeline, not the weights)."""
    import torch

    from models.config import tiny
    from models.loading import save_checkpoint
    from models.mcnet import MCNet

    torch.manual_seed(0)
    model = MCNet(tiny()).eval()
    path = folder / "tiny.pth.tar"
    save_checkpoint(path, config=model.config, generator=model.generator, kp_detector=model.kp_detector)
    return path


def _one_and_two_workers(
    console: Console, measure: Callable[[int], Throughput], *, title: str, workers_column: str
) -> dict[str, Any]:
    """Measure on one and on two workers, print the table with the ratio, return what goes in the JSON."""
    runs = [measure(workers) for workers in (1, 2)]
    ratio = round(runs[1].jobs_per_min / runs[0].jobs_per_min, 2)
    table = Table(title=title)
    for column in (workers_column, "jobs", "wall s", "jobs/min"):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(str(run.workers), str(run.jobs), f"{run.wall_s}", f"{run.jobs_per_min}")
    table.add_row("ratio 2/1", "", "", f"{ratio}x")
    console.print(table)
    return {"runs": [asdict(r) for r in runs], "ratio_2_vs_1": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs in the throughput batch")
    parser.add_argument("--overhead-model", choices=["demo", "configured", "tiny", "skip"], default="demo")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--skip-deployed", action="store_true", help="skip (2b): the batch as deployments on worker processes"
    )
    parser.add_argument("--approvals", type=int, default=3, help="console approvals timed (0: skip)")
    args = parser.parse_args()
    console = Console()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        tiny = tiny_checkpoint(Path(tmp))
        if args.overhead_model != "skip":
            from flows.demo.steps import demo_checkpoint

            checkpoint = {
                "demo": demo_checkpoint,
                "tiny": lambda: tiny,
                "configured": lambda: Path(os.environ["LIKENESS_MCNET_CHECKPOINT"]),
            }[args.overhead_model]()
            result = measure_overhead(checkpoint, args.overhead_model)
            out["overhead"] = asdict(result)
            table = Table(title="(1) everything but the model, as % of model time (10 s clip, one job)")
            for column in (
                "model",
                "frames",
                "resolution",
                "total s",
                "model s",
                "other s",
                "other % of model",
            ):
                table.add_column(column, justify="right")
            table.add_row(
                result.model,
                str(result.frames),
                str(result.resolution),
                f"{result.total_s}",
                f"{result.model_s}",
                f"{result.overhead_s}",
                f"{result.overhead_pct} %",
            )
            console.print(table)
            phases = Table(title="where the time outside the model went (s)")
            phases.add_column("phase")
            phases.add_column("s", justify="right")
            for phase, seconds in result.breakdown.items():
                phases.add_row(phase, f"{seconds}")
            console.print(phases)
        if not args.skip_throughput:
            out["throughput"] = _one_and_two_workers(
                console,
                lambda workers: measure_throughput(tiny, args.jobs, workers),
                title=f"(2) batch of {args.jobs} jobs, tiny MCNet, process workers",
                workers_column="workers",
            )
        if not args.skip_deployed:
            from bench.deployed_batch import measure_deployed_throughput

            out["deployed_throughput"] = _one_and_two_workers(
                console,
                lambda workers: measure_deployed_throughput(tiny, args.jobs, workers),
                title=f"(2b) batch of {args.jobs} jobs as deployments: nightly-batch, render-job runs on gpu workers",
                workers_column="gpu workers",
            )
        if args.approvals > 0:
            latency = measure_approve_latency(tiny, args.approvals)
            out["approve_latency"] = asdict(latency)
            table = Table(title="(3) console approve request (publication queued)")
            for column in (
                "approvals",
                "response s (median)",
                "response s (max)",
                "published after s (median)",
            ):
                table.add_column(column, justify="right")
            table.add_row(
                str(latency.approvals),
                f"{latency.response_s_median}",
                f"{latency.response_s_max}",
                f"{latency.published_after_s_median}",
            )
            console.print(table)
    path = RESULTS / f"batch-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2), encoding="utf-8")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    from flows.runtime.orchestrator import sigterm_as_exit

    with sigterm_as_exit():  # SIGTERM stops the S3 and Prefect servers a measurement started, as Ctrl-C does
        main()
