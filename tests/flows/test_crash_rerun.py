"""Robustness: a run killed between steps is resumed by the next run and publishes exactly once;
transient storage errors are retried, governance refusals and bad inputs never are.

A kill is injected as an exception that is not an `Exception` (like a signal tearing the process down):
no handler of ours runs, exactly as when the process dies. The job is left where the kill found it.
"""

from __future__ import annotations

from typing import Any

import pytest

from flows.batch.flow import BatchIncomplete, nightly_batch
from flows.jobs.claims import HeldElsewhere
from flows.render import steps as render_steps
from flows.runtime.retry import is_transient, only_transient
from governance import jobs, publications
from governance.enums import JobState
from governance.errors import ConsentRevoked
from governance.uow import unit_of_work
from pipeline.errors import InputError
from pipeline.storage.objects import ObjectStore, StorageUnavailable
from tests.flows.conftest import FlowWorld, Killed

pytestmark = pytest.mark.slow


def once(real: Any, error: BaseException) -> Any:
    """A wrapper that raises `error` on its first call and then behaves like `real`."""
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise error
        return real(*args, **kwargs)

    wrapper.calls = calls  # type: ignore[attr-defined]
    return wrapper


def run_until_killed(batch_id: str) -> None:
    with pytest.raises((Killed, BatchIncomplete)):
        nightly_batch(batch_id=batch_id)


def test_killed_between_upload_and_record_publishes_exactly_once(
    flow_world: FlowWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = flow_world
    batch_id, job_id = world.one_job("S-1")
    monkeypatch.setattr(publications, "record_publication", once(publications.record_publication, Killed()))
    key = f"jobs/{job_id}/video.mp4"

    run_until_killed(batch_id)

    assert world.state(job_id) == JobState.publishing, " ".join(world.actions(job_id))
    assert world.publications(job_id) == 0
    assert world.rt.store.exists("published", key)  # uploaded by the killed run, never recorded
    assert nightly_batch(batch_id=batch_id) == {job_id: "published"}
    assert world.publications(job_id) == 1
    assert len(world.rt.store.versions("published", key)) == 1  # the orphan is gone, one version is out
    actions = world.actions(job_id)
    assert actions.count("job.rendered") == 1  # nothing rendered again
    assert actions.count("publication.created") == 1
    assert actions.count("publication.orphan_removed") == 1
    assert "job.reclaimed" in actions
    assert nightly_batch(batch_id=batch_id) == {}


def test_killed_after_upload_before_record_rerenders_same_key(
    flow_world: FlowWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = flow_world
    batch_id, job_id = world.one_job("S-1")
    monkeypatch.setattr(render_steps.jobs, "record_render", once(render_steps.jobs.record_render, Killed()))

    run_until_killed(batch_id)

    assert world.state(job_id) == JobState.rendering
    key = f"jobs/{job_id}/render.mp4"
    assert world.rt.store.exists("quarantine", key)  # uploaded, not yet recorded
    # The re-run also meets an unreachable store once: a transient error, retried by the task.
    flaky = once(ObjectStore.get_file, StorageUnavailable("S3 endpoint unreachable (injected)"))
    monkeypatch.setattr(ObjectStore, "get_file", flaky)
    assert nightly_batch(batch_id=batch_id) == {job_id: "published"}
    assert flaky.calls["n"] > 1
    assert world.rt.store.versions("quarantine", key)[0][1] is False
    assert len(world.rt.store.versions("quarantine", key)) == 1  # same seed, same bytes: no second version
    assert world.publications(job_id) == 1
    actions = world.actions(job_id)
    assert actions.count("job.rendering") == 1 and actions.count("job.reclaimed") == 1


def test_a_job_held_by_a_live_run_is_left_alone_unless_silent(flow_world: FlowWorld) -> None:
    world = flow_world
    _, job_id = world.one_job("S-1")
    with unit_of_work(world.sessions) as session:
        jobs.claim(
            session,
            jobs.get_job(session, job_id),
            to=JobState.rendering,
            flow_run_id="run-a",
            actor="system:test",
        )

    with pytest.raises(HeldElsewhere, match="live flow run run-a"):
        render_steps.claim_render(world.rt, job_id, run_id="run-b", holder_alive=lambda run: run == "run-a")
    assert world.job(job_id).flow_run_id == "run-a"

    world.rt.settings = world.rt.settings.model_copy(
        update={"reclaim_after_minutes": 1e-9}
    )  # silent too long
    assert render_steps.claim_render(world.rt, job_id, run_id="run-b", holder_alive=lambda run: True) == (
        JobState.rendering
    )
    job = world.job(job_id)
    assert (job.flow_run_id, job.attempts) == ("run-b", 2)
    assert world.actions(job_id)[-1] == "job.reclaimed"


def test_only_transient_errors_are_retried() -> None:
    class State:
        def __init__(self, exc: BaseException) -> None:
            self.exc = exc

        def result(self, raise_on_failure: bool = True) -> BaseException:
            return self.exc

    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = StorageUnavailable("down")
    assert only_transient(None, None, State(StorageUnavailable("down")))
    assert is_transient(wrapped)
    assert not only_transient(None, None, State(ConsentRevoked("consent c revoked")))
    assert not only_transient(None, None, State(InputError("no face")))
    assert not only_transient(None, None, State(ValueError("bug")))
