"""Revoking or narrowing a consent takes its publications down: from Python, the CLI and the console,
with the storage up, and with the storage down during the revocation (the revocation stands, the
takedown stays queued, and completes once the storage is back).

This module runs its own SeaweedFS server on a fixed port (it overrides the session's `s3_server`), so
it can kill and restart it without disturbing other tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from console.cli.app import app
from flows.publish.delivery import mark_and_publish
from flows.publish.verify import verify_file
from flows.takedown.steps import revoke_consent, take_down_due
from governance import jobs, publications, withdrawals
from governance.enums import JobState
from governance.schema import AuditEvent, Consent
from governance.uow import unit_of_work
from pipeline.storage.local_s3 import LocalS3Server, choose_ports
from tests.fixtures.env import services_env
from tests.fixtures.storage import ACCESS_KEY, SECRET_KEY, S3ServerHandle
from tests.governance.helpers import record_published
from tests.publishing.conftest import PublishWorld

pytestmark = [pytest.mark.s3, pytest.mark.slow]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3ServerHandle]:
    """A server of this module's own, on a fixed port, so a test can kill it and start it again."""
    port = choose_ports()["s3"]
    server = LocalS3Server(
        tmp_path_factory.mktemp("revocation-s3"), access_key=ACCESS_KEY, secret_key=SECRET_KEY, s3_port=port
    )
    state = server.start(timeout=90.0)
    try:
        yield S3ServerHandle(server, state.endpoint, ACCESS_KEY, SECRET_KEY)
    finally:
        server.stop(grace=30.0)


@pytest.fixture
def storage_outage(s3_server: S3ServerHandle) -> Iterator[S3ServerHandle]:
    """Lets a test kill the server; it is running again (same data, same port) after the test whatever happens."""
    try:
        yield s3_server
    finally:
        s3_server.server.start(timeout=90.0)


def quick_publication(world: PublishWorld) -> tuple[str, str, str]:
    """Another job of the subject, published without marking (database row + object): (job, publication, key)."""
    job_id = world.new_job()
    key = f"jobs/{job_id}/video.mp4"
    stored = world.store.put_file("published", key, world.render_path)
    return job_id, record_published(world.sf, job_id, stored), key


def state(world: PublishWorld, job_id: str) -> JobState:
    with unit_of_work(world.sf) as session:
        return JobState(jobs.get_job(session, job_id).state)


def revoked(world: PublishWorld) -> bool:
    with unit_of_work(world.sf) as session:
        return all(
            c.revoked_at is not None
            for c in session.scalars(
                select(Consent).where(
                    Consent.lineage_id == world.consent_id, Consent.superseded_by_id.is_(None)
                )
            )
        )


def actions(world: PublishWorld) -> list[str]:
    with unit_of_work(world.sf) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def cli_env(world: PublishWorld) -> dict[str, str]:
    settings = world.runtime.settings
    return {
        **services_env(settings),
        "COLUMNS": "250",
        "LIKENESS_ACTOR": "",
    }


def test_python_api_revocation_takes_down_and_verify_says_withdrawn(
    publish_world: PublishWorld, tmp_path: Path
) -> None:
    world = publish_world
    result = mark_and_publish(world.runtime, job_id=world.job_id, actor="system:publish")
    copy = tmp_path / "found-online.mp4"
    world.store.get_file("published", result.object_key, copy)
    other_job, other_pub, other_key = quick_publication(world)

    change = revoke_consent(
        world.sf,
        world.store,
        consent_id=world.consent_id,
        actor_email=world.compliance_email,
        reason="subject withdrew",
    )

    assert change.report.queued == ()
    assert {(o.publication_id, o.where) for o in change.report.taken_down} == {
        (result.publication_id, f"{result.bucket}/{result.object_key}"),
        (other_pub, f"{result.bucket}/{other_key}"),
    }
    assert not world.store.exists("published", result.object_key) and not world.store.exists(
        "published", other_key
    )
    assert state(world, world.job_id) == state(world, other_job) == JobState.taken_down
    assert actions(world)[-5:].count("publication.taken_down") == 2 and "consent.revoked" in actions(world)
    with unit_of_work(world.sf) as session:
        assert withdrawals.takedowns_due(session) == []
    report = verify_file(copy, sessions=world.sf, trust=None)
    assert report.verdict == "taken_down"
    assert report.withdrawal is not None and "was revoked at" in report.withdrawal
    assert report.withdrawal.endswith("subject withdrew")


def test_python_api_revocation_with_storage_down_queues_then_completes(
    publish_world: PublishWorld,
    storage_outage: S3ServerHandle,
    tmp_path: Path,
) -> None:
    world = publish_world
    result = mark_and_publish(world.runtime, job_id=world.job_id, actor="system:publish")
    copy = tmp_path / "found-online.mp4"
    world.store.get_file("published", result.object_key, copy)
    storage_outage.server.kill()

    change = revoke_consent(
        world.sf,
        world.store,
        consent_id=world.consent_id,
        actor_email=world.compliance_email,
        reason="subject withdrew",
    )

    assert revoked(world)  # the revocation stands
    assert change.report.taken_down == ()
    [queued] = change.report.queued
    assert (
        queued.publication_id == result.publication_id
        and queued.where == f"{result.bucket}/{result.object_key}"
    )
    assert "unreachable" in queued.detail and "likeness publication sweep" in queued.detail
    assert state(world, world.job_id) == JobState.published
    assert verify_file(copy, sessions=world.sf, trust=None).verdict == "withdrawal_pending"
    # Still down: the retry queues it again, nothing is lost.
    assert len(take_down_due(world.sf, world.store, actor="system:takedown").queued) == 1

    storage_outage.server.start(timeout=90.0)
    retried = take_down_due(world.sf, world.store, actor="system:takedown")

    assert [o.publication_id for o in retried.taken_down] == [result.publication_id] and retried.queued == ()
    assert not world.store.exists("published", result.object_key)
    assert state(world, world.job_id) == JobState.taken_down
    assert verify_file(copy, sessions=world.sf, trust=None).verdict == "taken_down"
    assert take_down_due(world.sf, world.store, actor="system:takedown") == type(retried)()


def test_cli_revoke_lists_takedowns_and_storage_down_exits_1_until_the_sweep(
    publish_world: PublishWorld,
    storage_outage: S3ServerHandle,
) -> None:
    world = publish_world
    env = cli_env(world)
    runner = CliRunner()
    job_id, pub_id, key = quick_publication(world)
    storage_outage.server.kill()

    down = runner.invoke(
        app,
        [
            "consent",
            "revoke",
            world.consent_id,
            "--reason",
            "subject withdrew",
            "--actor",
            world.compliance_email,
        ],
        env=env,
    )

    assert down.exit_code == 1, down.output
    assert (
        f"consent {world.consent_id} (version 1) revoked; 0 publication(s) taken down, 1 queued"
        in down.output
    )
    bucket = world.store.bucket_name("published")
    assert re.search(
        rf"takedown QUEUED: publication {pub_id} \(job {job_id}\) at {bucket}/{key}: .*unreachable",
        down.output,
    )
    assert down.output.rstrip().splitlines()[-1].startswith("error: 1 takedown(s) still queued")
    assert revoked(world) and state(world, job_id) == JobState.published
    denied = runner.invoke(app, ["publication", "sweep", "--actor", world.operator_email], env=env)
    assert denied.exit_code == 1 and "lacks role compliance or admin" in denied.output

    storage_outage.server.start(timeout=90.0)
    swept = runner.invoke(app, ["publication", "sweep", "--actor", world.compliance_email], env=env)

    assert swept.exit_code == 0, swept.output
    assert (
        f"taken down: publication {pub_id} (job {job_id}) at {bucket}/{key}: 1 version(s) deleted"
        in swept.output
    )
    assert not world.store.exists("published", key) and state(world, job_id) == JobState.taken_down
    shown = runner.invoke(app, ["publication", "show", pub_id, "--actor", world.compliance_email], env=env)
    assert shown.exit_code == 0 and "(revoked)" in shown.output and "was revoked at" in shown.output
    assert "access.read" in actions(world)


def test_cli_amend_that_narrows_takes_down_what_it_no_longer_covers(publish_world: PublishWorld) -> None:
    world = publish_world
    env = cli_env(world)
    job_id, pub_id, key = quick_publication(world)  # advertising/web/DE
    amended = CliRunner().invoke(
        app,
        [
            "consent",
            "amend",
            world.consent_id,
            "--reason",
            "France only",
            "--territory",
            "FR",
            "--actor",
            world.compliance_email,
        ],
        env=env,
    )
    assert amended.exit_code == 0, amended.output
    assert f"taken down: publication {pub_id} (job {job_id})" in amended.output
    assert not world.store.exists("published", key) and state(world, job_id) == JobState.taken_down
    with unit_of_work(world.sf) as session:
        row = publications.get_publication(session, pub_id)
        assert row.taken_down_by == world.compliance_email
        assert "no longer covers territory 'DE' (territories now FR)" in str(row.takedown_reason)


def test_console_revoke_with_storage_down_keeps_the_revocation_and_queues(
    publish_world: PublishWorld,
    storage_outage: S3ServerHandle,
    tmp_path: Path,
) -> None:
    from tests.web.conftest import PASSWORD, csrf_from

    world = publish_world
    job_id, pub_id, key = quick_publication(world)
    with unit_of_work(world.sf) as session:
        from governance import users

        users.set_password(
            session,
            user_id=users.get_user_by_email(session, world.compliance_email).id,
            password=PASSWORD,
            actor="system:test",
        )
    from fastapi.testclient import TestClient

    from console.web import WebConfig, create_app

    web = create_app(world.runtime, WebConfig())
    with TestClient(web, base_url="https://testserver", follow_redirects=False) as client:
        token = csrf_from(client.get("/sign-in").text)
        signed_in = client.post(
            "/sign-in", data={"email": world.compliance_email, "password": PASSWORD, "csrf_token": token}
        )
        assert signed_in.status_code == 303
        confirm = client.get(f"/consents/{world.consent_id}/revoke")
        assert key in confirm.text
        storage_outage.server.kill()
        done = client.post(
            f"/consents/{world.consent_id}/revoke",
            data={"reason": "subject withdrew", "csrf_token": csrf_from(confirm.text)},
        )
        assert done.status_code == 303
        page = client.get(done.headers["location"]).text
    assert "revoked; 0 publication(s) taken down; TAKEDOWN QUEUED for 1 (storage unavailable)" in page
    assert f"takedown QUEUED: publication {pub_id} (job {job_id})" in page
    assert revoked(world) and state(world, job_id) == JobState.published

    storage_outage.server.start(timeout=90.0)
    retried = take_down_due(world.sf, world.store, actor="system:takedown")  # what the sweep runs

    assert [o.publication_id for o in retried.taken_down] == [pub_id]
    assert not world.store.exists("published", key) and state(world, job_id) == JobState.taken_down
