"""A job's local files (`var/work/<job>/`) do not outlive it: every final state removes them.

The workspace holds the portrait, the reference photo, the driving video and the unlabelled,
unwatermarked render: biometric data and an unmarked deepfake. Real database, S3 server, ffmpeg, tiny
MCNet and Prefect's test API; each test asserts the job's state and that nothing is left on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.batch.flow import nightly_batch
from flows.jobs.data import workspace
from flows.maintenance import clear_local_workspaces
from flows.render import steps as render_steps
from flows.review.steps import apply_decision
from flows.takedown.flow import takedown
from governance.enums import JobState
from tests.flows.conftest import REVIEWER, FlowWorld, Killed, ffmpeg

pytestmark = pytest.mark.slow


def leftovers(world: FlowWorld) -> list[str]:
    work = world.rt.settings.var_dir / "work"
    return sorted(str(p.relative_to(work)) for p in work.rglob("*")) if work.exists() else []


def fake_workspace(world: FlowWorld, job_id: str) -> Path:
    """What a run leaves behind mid-way: inputs, a partial render, a label's temporary folder."""
    folder = workspace(world.rt.workspace_root, job_id)
    (folder / "portrait.png").write_bytes(world.media.portrait.read_bytes())
    (folder / f".{render_steps.RENDER_NAME}.4242.partial.mp4").write_bytes(b"\x00" * 64)
    publishing = world.rt.workspace_root / f"publish-{job_id}" / "likeness-label-abc"
    publishing.mkdir(parents=True)
    (publishing / "label.txt").write_text("AI-generated", encoding="utf-8")
    return folder


def test_every_final_state_of_a_batch_removes_the_workspace(flow_world: FlowWorld) -> None:
    world = flow_world
    for reference in ("S-1", "S-NONE", "S-BROKEN"):
        world.add_subject(reference)
    world.grant("S-1")
    world.grant("S-BROKEN")
    other_driving = world.root / "inputs" / "driving-copy.mp4"
    ffmpeg("-i", str(world.media.driving), "-c:v", "libx264", "-crf", "30", str(other_driving))
    batch_id = world.submit(
        [{"subject": "S-1"}, {"subject": "S-NONE"}, {"subject": "S-BROKEN", "driving": str(other_driving)}]
    )
    published, refused, failed = world.job_ids(batch_id)
    # The broken job's driving video is replaced in storage after submission: a technical failure.
    broken = world.job(failed)
    from governance.schema import Asset
    from governance.uow import unit_of_work

    with unit_of_work(world.sessions) as session:
        asset = session.get(Asset, broken.driving_asset_id)
        assert asset is not None
        bucket_key = asset.object_key
    world.rt.store.put_file("inputs", bucket_key, world.media.portrait)

    with pytest.raises(Exception, match="1 of 3 job"):
        nightly_batch(batch_id=batch_id)

    assert [world.state(j) for j in (published, refused, failed)] == [
        JobState.published,
        JobState.refused,
        JobState.failed,
    ]
    assert "InputChanged" in (world.job(failed).last_error or "")
    assert leftovers(world) == []

    # Taken down: a local copy that somehow reappeared goes with the takedown.
    fake_workspace(world, published)
    assert takedown(job_id=published, reason="subject asked") == [published]
    assert world.state(published) == JobState.taken_down
    assert leftovers(world) == []


def test_a_killed_run_is_recovered_and_its_leftovers_removed(
    flow_world: FlowWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = flow_world
    batch_id, job_id = world.one_job("S-1")
    from pipeline.faces import portrait as faces

    calls = {"n": 0}
    real = faces.compose_output

    def dies_mid_animation(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed()
        return real(*args, **kwargs)

    monkeypatch.setattr(faces, "compose_output", dies_mid_animation)
    with pytest.raises(Killed):
        nightly_batch(batch_id=batch_id)
    monkeypatch.setattr(faces, "compose_output", real)
    assert world.state(job_id) == JobState.rendering
    fake_workspace(world, job_id)  # what SIGKILL leaves (no __exit__ would have run)
    assert any(name.endswith(".partial.mp4") for name in leftovers(world))

    # The take-over itself clears the dead run's files, before anything is fetched again.
    state = render_steps.claim_render(world.rt, job_id, run_id="the-next-run", holder_alive=lambda _: False)
    assert state == JobState.rendering
    assert leftovers(world) == []
    assert "job.reclaimed" in world.actions(job_id)

    fake_workspace(world, job_id)
    assert nightly_batch(batch_id=batch_id) == {job_id: "published"}
    assert leftovers(world) == []


def test_review_rejection_and_the_sweep_remove_leftovers(flow_world: FlowWorld) -> None:
    world = flow_world
    world.add_subject("S-1")
    world.add_subject("S-2")
    world.grant("S-1")
    world.grant("S-2")
    rejected, waiting = world.flagged_batch(["S-1", "S-2"], requester="operator@example.org")
    fake_workspace(world, rejected)
    apply_decision(
        rt=world.rt,
        job_id=rejected,
        reviewer_email=REVIEWER,
        verdict="reject",
        reason="lips drift",
    )
    assert world.state(rejected) == JobState.rejected
    assert leftovers(world) == []

    # The sweep: a job that ended elsewhere, an unknown folder, and a job still waiting for review go;
    # a job being rendered right now keeps its folder.
    fake_workspace(world, rejected)
    fake_workspace(world, waiting)
    workspace(world.rt.workspace_root, "not-a-job")
    batch_id = world.submit([{"subject": "S-1"}])
    [active] = world.job_ids(batch_id)
    render_steps.claim_render(world.rt, active, run_id="live-run")
    fake_workspace(world, active)
    removed = clear_local_workspaces(world.rt)
    assert sorted(removed) == sorted([rejected, waiting, "not-a-job"])
    assert {name.split("/")[0] for name in leftovers(world)} == {active, f"publish-{active}"}
