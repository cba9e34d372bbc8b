"""governance.publications on SQLite and PostgreSQL: recording, lookup, payloads, takedown rules."""

from __future__ import annotations

import pytest

from governance import consent, publications
from governance.enums import JobState
from governance.errors import InvalidTransition, RoleRequired, ValidationFailed
from governance.uow import unit_of_work
from tests.governance.conftest import world  # noqa: F401 - the shared governance world fixture
from tests.governance.helpers import World, audit_actions, job_state

SHA = "d" * 64


def test_record_find_and_describe(world: World) -> None:  # noqa: F811
    granted = world.grant()
    job_id = world.publishing_job(granted.id)
    with unit_of_work(world.sf) as session:
        payload = publications.allocate_payload(session, job_id)
        assert publications.allocate_payload(session, job_id) == payload  # deterministic per job
    pub_id = world.publish(job_id, payload)
    assert job_state(world.sf, job_id) == JobState.published
    assert audit_actions(world.sf)[-2:] == ["job.published", "publication.created"]
    with unit_of_work(world.sf) as session:
        found = publications.find_by_watermark(session, payload)
        assert found is not None and found.id == pub_id
        assert publications.find_by_watermark(session, payload ^ 1) is None
        assert publications.find_by_sha256(session, SHA.upper()) is not None
        record = publications.describe(session, found)
        assert (record.job_id, record.consent_id, record.consent_version) == (job_id, granted.id, 1)
        assert record.model_sha256 == "b" * 64 and record.reviewer is None and record.active


def test_payload_collision_moves_to_the_next_candidate(world: World) -> None:  # noqa: F811
    granted = world.grant()
    first, second = world.publishing_job(granted.id), world.publishing_job(granted.id)
    with unit_of_work(world.sf) as session:
        wanted = publications.allocate_payload(session, second)
    world.publish(first, wanted)  # another job already holds `second`'s first candidate
    with unit_of_work(world.sf) as session:
        other = publications.allocate_payload(session, second)
    assert other != wanted
    with pytest.raises(ValidationFailed, match=f"watermark payload {wanted} already used"):
        world.publish(second, wanted)
    assert job_state(world.sf, second) == JobState.publishing  # rolled back, nothing half-written
    world.publish(second, other)


def test_only_a_publishing_job_can_be_published(world: World) -> None:  # noqa: F811
    job_id = world.batch_job()
    with pytest.raises(InvalidTransition, match=f"job {job_id} is submitted: only a publishing job"):
        world.publish(job_id, 1)
    with world.sf() as session:
        assert publications.list_publications(session) == []


def test_takedown_rules(world: World) -> None:  # noqa: F811
    granted = world.grant()
    job_id = world.publishing_job(granted.id)
    pub_id = world.publish(job_id)
    with pytest.raises(ValidationFailed, match="needs a reason"), unit_of_work(world.sf) as session:
        publications.takedown(session, publication_id=pub_id, actor="system:x", reason="  ")
    with (
        pytest.raises(ValidationFailed, match="must be a user email or system:"),
        unit_of_work(world.sf) as session,
    ):
        publications.takedown(session, publication_id=pub_id, actor="robot", reason="r")
    with (
        pytest.raises(RoleRequired, match="operator@example.org lacks role compliance or admin"),
        unit_of_work(world.sf) as session,
    ):
        publications.takedown(session, publication_id=pub_id, actor_email="operator@example.org", reason="r")
    assert "access.denied" in audit_actions(world.sf)
    with unit_of_work(world.sf) as session:
        assert [p.id for p in publications.publications_for_consent(session, granted.id)] == [pub_id]
        row = publications.takedown(
            session,
            publication_id=pub_id,
            actor_email="compliance@example.org",
            reason="complaint",
            storage={"deleted_versions": ["v1"]},
        )
        assert row.taken_down_by == "compliance@example.org"
    assert job_state(world.sf, job_id) == JobState.taken_down
    with pytest.raises(InvalidTransition, match="already taken down"), unit_of_work(world.sf) as session:
        publications.takedown(session, publication_id=pub_id, actor="system:x", reason="again")
    with unit_of_work(world.sf) as session:
        assert publications.publications_for_consent(session, granted.id) == []
        assert len(publications.publications_for_consent(session, granted.id, active_only=False)) == 1
        assert publications.list_publications(session, active_only=True) == []


def test_publications_follow_the_consent_lineage(world: World) -> None:  # noqa: F811
    granted = world.grant()
    job_id = world.publishing_job(granted.id)
    pub_id = world.publish(job_id)
    with unit_of_work(world.sf) as session:
        amended = consent.amend(
            session,
            consent_id=granted.id,
            recorded_by=world.compliance,
            reason="adds Austria",
            territories=["DE", "FR", "AT"],
        )
        amended_id = amended.id
    with unit_of_work(world.sf) as session:
        assert [p.id for p in publications.publications_for_consent(session, amended_id)] == [pub_id]
