"""A reviewer's machine needs no storage secret and no signing key: deciding is separate from publishing.

`prefect.yaml` deployed to a real `prefect server`, one `cpu` process worker holding the storage secret
(and the signing identity, the development CA under its own `var_dir`). The reviewer runs the real
`likeness review approve` with `LIKENESS_PUBLISH_DEPLOYMENT` set and an environment that has the
database and `PREFECT_API_URL` only: no S3 secret or access key, an S3 endpoint nobody listens on, no
signing key, a `var_dir` of its own. The command returns as soon as the decision is recorded and the
run is queued; the worker publishes the job, exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from flows.publish.delivery import SIGNING_DIR
from flows.runtime.orchestrator import free_port
from governance.enums import JobState
from governance.schema import AuditEvent
from governance.uow import unit_of_work
from tests.flows.conftest import REVIEWER, REVIEWER_OPERATOR, FlowWorld, cli_env
from tests.flows.deployed import Worker, deploy, run_state
from tests.flows.test_deployments import prefect_env as prefect_env  # noqa: F401 - fixtures used below
from tests.flows.test_deployments import prefect_server as prefect_server  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
LIKENESS = str(Path(sys.executable).parent / "likeness")
ROOT = Path(__file__).resolve().parents[2]
PUBLISH_DEPLOYMENT = "publish-job/publish-job--prod"


def test_approve_on_a_machine_without_secrets_is_published_by_the_worker(
    flow_world: FlowWorld,
    prefect_env: dict[str, str],  # noqa: F811
    prefect_server: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    world = flow_world
    world.add_subject("S-1")
    world.grant("S-1")
    [job_id] = world.flagged_batch(["S-1"], requester=REVIEWER_OPERATOR)
    worker_env = {**prefect_env, **cli_env(world), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    deploy(worker_env)

    reviewer_var = tmp_path / "reviewer-var"
    reviewer_env = {k: v for k, v in os.environ.items() if not k.startswith(("LIKENESS_", "PREFECT_"))}
    reviewer_env.update(
        {
            "PREFECT_API_URL": prefect_env["PREFECT_API_URL"],
            "PREFECT_HOME": str(tmp_path / "reviewer-prefect-home"),
            "LIKENESS_DATABASE_URL": world.rt.settings.database_url,
            "LIKENESS_VAR_DIR": str(reviewer_var),
            "LIKENESS_PUBLISH_DEPLOYMENT": PUBLISH_DEPLOYMENT,
            # No secret: any storage access on this machine would fail (nobody listens there either).
            "LIKENESS_S3_ENDPOINT": f"127.0.0.1:{free_port()}",
            "LIKENESS_S3_ACCESS_KEY": "",
            "LIKENESS_S3_SECRET_KEY": "",
            "COLUMNS": "250",
        }
    )
    assert not any("SIGNING" in key or "SECRET" in key for key, v in reviewer_env.items() if v)

    started = time.monotonic()
    done = subprocess.run(
        [LIKENESS, "review", "approve", job_id, "--actor", REVIEWER, "--reason", "looks right"],
        env=reviewer_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr and done.stderr.strip() == "", done.stderr
    assert "publishing queued as flow run" in done.stdout, done.stdout
    assert world.state(job_id) == JobState.approved  # decided; nobody has published yet (no worker runs)
    assert world.publications(job_id) == 0
    with unit_of_work(world.sessions) as session:
        queued = session.scalars(
            select(AuditEvent).where(AuditEvent.job_id == job_id, AuditEvent.action == "publish.queued")
        ).one()
    assert queued.details["mode"] == "deployment" and queued.actor == REVIEWER
    run_id = queued.details["flow_run_id"]
    assert run_id in done.stdout

    api = httpx.Client(base_url=prefect_server, timeout=30)
    worker = Worker.start(worker_env, pool="cpu", name="cpu-publisher", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and run_state(api, run_id) not in (
            "COMPLETED",
            "FAILED",
            "CRASHED",
        ):
            time.sleep(1)
    finally:
        worker.stop()
    assert run_state(api, run_id) == "COMPLETED", worker.log()
    assert world.state(job_id) == JobState.published
    assert world.publications(job_id) == 1
    assert world.actions(job_id).count("job.published") == 1
    # The reviewer's machine made no signing identity and kept no media: it only decided.
    assert not (reviewer_var / SIGNING_DIR).exists()
    assert not (reviewer_var / "work").exists() or not any((reviewer_var / "work").iterdir())
    assert (world.rt.settings.var_dir / SIGNING_DIR).is_dir()  # the worker's identity signed it
    print(f"review approve returned in {took:.1f} s (process start included)")
