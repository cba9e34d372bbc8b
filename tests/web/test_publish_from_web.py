"""Approving in the console publishes the job exactly as `likeness review approve` does: the console calls
`flows.review.steps.apply_decision`, which records the decision and queues the publish flow (consent verified
again, label, watermark, C2PA, upload) — here for real, on the project's Prefect server, SQLite and
SeaweedFS. The decision returns at once; the page shows how publishing went and offers a retry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from console.web import WebConfig
from flows.publish.queue import PublishStatus, publish_status
from flows.runtime.root import Runtime
from governance import jobs
from governance.enums import JobState
from governance.schema import AuditEvent, Publication
from governance.uow import unit_of_work
from pipeline.storage.objects import ObjectStore
from tests.web.conftest import WebWorld, build_world, error_of, store_job_media

pytestmark = [pytest.mark.s3, pytest.mark.slow]


@pytest.fixture
def web(sqlite_db_url: str, tmp_path: Path, s3_server: Any, prefect_api: str) -> Iterator[WebWorld]:
    """A console that queues the publish flow on approval, on the real S3 server and Prefect API."""
    world = build_world(
        tmp_path,
        sqlite_db_url,
        s3=s3_server,
        config=lambda clock: WebConfig(clock=clock, publish_on_approval=True),
    )
    yield world
    world.close()


def awaiting_review(web: WebWorld, sample_media: dict[str, Path]) -> str:
    """A job whose media and render are in storage, flagged for review."""
    parts = store_job_media(web, sample_media)
    return web.job_awaiting_review(
        portrait=parts["portrait"], driving=parts["driving"], output=parts["output"]
    )


def approve(web: WebWorld, client: Any, job_id: str) -> Any:
    """The reviewer's approval, posted from the job's review page."""
    return web.post(
        client,
        f"/review/jobs/{job_id}",
        f"/review/jobs/{job_id}/decision",
        {"verdict": "approve", "reason": "looks right"},
    )


def job_actions(db: Any, job_id: str) -> list[str]:
    """The job's audit actions, in chain order."""
    return list(
        db.scalars(select(AuditEvent.action).where(AuditEvent.job_id == job_id).order_by(AuditEvent.seq))
    )


def test_web_approval_publishes_the_render(web: WebWorld, sample_media: dict[str, Path]) -> None:
    job_id = awaiting_review(web, sample_media)
    client = web.client("reviewer")
    response = approve(web, client, job_id)
    assert response.status_code == 303, error_of(response)
    flash = client.get(response.headers["location"]).text
    assert "approved; now approved; publishing queued" in flash
    assert settle(web.runtime, job_id).state == "published"
    assert 'Publication: <span class="state">published' in client.get(f"/review/jobs/{job_id}").text
    with unit_of_work(web.sf) as db:
        assert jobs.get_job(db, job_id).state == JobState.published
        publication = db.scalars(select(Publication).where(Publication.job_id == job_id)).one()
        actions = job_actions(db, job_id)
    assert web.runtime.store.exists("published", publication.object_key)
    assert (
        actions.index("review.approved")
        < actions.index("job.publishing")
        < actions.index("publication.created")
    )


def settle(rt: Runtime, job_id: str, *, within: float = 400.0) -> PublishStatus:
    """Wait (bounded) until the queued publication has ended, then say how."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = publish_status(rt, job_id)
        if status.state in ("published", "failed"):
            return status
        time.sleep(0.5)
    raise AssertionError(f"publication of {job_id} still {publish_status(rt, job_id).state} after {within} s")


def test_approval_while_storage_is_down_returns_shows_the_failure_and_a_retry_publishes_once(
    web: WebWorld, sample_media: dict[str, Path]
) -> None:
    job_id = awaiting_review(web, sample_media)
    working = web.runtime.store
    settings = web.runtime.settings
    # Storage goes down: a real client on a port nothing listens on (as a stopped server leaves it).
    web.runtime._parts["store"] = ObjectStore(
        "127.0.0.1:1",
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        bucket_prefix=settings.s3_bucket_prefix,
    )
    client = web.client("reviewer")
    response = approve(web, client, job_id)
    assert response.status_code == 303, error_of(response)
    assert publish_status(web.runtime, job_id).state in (
        "queued",
        "publishing",
    )  # returned before publishing

    failed = settle(web.runtime, job_id)
    assert failed.state == "failed" and failed.error and "StorageUnavailable" in failed.error, failed
    with unit_of_work(web.sf) as db:
        assert jobs.get_job(db, job_id).state in (JobState.approved, JobState.publishing)
        assert db.scalars(select(Publication).where(Publication.job_id == job_id)).first() is None
    page = client.get(f"/review/jobs/{job_id}").text
    assert 'Publication: <span class="state">failed' in page and "StorageUnavailable" in page
    assert "Retry publishing" in page
    with unit_of_work(web.sf) as db:
        batch_id = jobs.get_job(db, job_id).batch_id
    batch_page = web.client("operator").get(f"/batches/{batch_id}").text  # the operator sees it too
    assert (
        "failed</span>" in batch_page
        and "StorageUnavailable" in batch_page
        and "Retry publishing" in batch_page
    )

    web.runtime._parts["store"] = working  # storage is back
    retried = web.post(client, f"/review/jobs/{job_id}", f"/review/jobs/{job_id}/publish")
    assert retried.status_code == 303, error_of(retried)
    assert settle(web.runtime, job_id).state == "published"
    with unit_of_work(web.sf) as db:
        assert jobs.get_job(db, job_id).state == JobState.published
        [publication] = db.scalars(select(Publication).where(Publication.job_id == job_id)).all()
        actions = job_actions(db, job_id)
    assert len(working.versions("published", publication.object_key)) == 1
    assert actions.count("publish.queued") == 2 and actions.count("publish.attempt_failed") == 1
    assert actions.count("publication.created") == 1
    assert "Retry publishing" not in client.get(f"/review/jobs/{job_id}").text
