"""Users (roles, argon2 passwords, sign-in), subjects, assets and batches: creation and refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from governance import batches, subjects, users
from governance.enums import AssetKind, JobState
from governance.errors import AuthenticationFailed, NotFound, RoleRequired, ValidationFailed
from governance.schema import AuditEvent, Batch, Job, Subject, User
from governance.uow import unit_of_work
from tests.governance.helpers import World, count


def test_user_with_password_signs_in(world: World) -> None:
    with unit_of_work(world.sf) as session:
        user = users.add_user(
            session,
            email=" Rita@Example.ORG ",
            roles=["reviewer", "auditor", "reviewer"],
            actor="admin@example.org",
            password="correct horse battery",
        )
    assert (user.email, user.roles) == ("rita@example.org", ["auditor", "reviewer"])
    assert user.password_hash and user.password_hash.startswith("$argon2id$")
    with world.sf() as session:
        assert (
            users.authenticate(session, email="rita@example.org", password="correct horse battery").id
            == user.id
        )
        for email, password in [("rita@example.org", "wrong password!!"), ("nobody@example.org", "x" * 12)]:
            with pytest.raises(AuthenticationFailed, match=f"sign-in failed for {email}$"):
                users.authenticate(session, email=email, password=password)
    with world.sf() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.resource_id == user.id)).one()
    assert event.details == {
        "email": "rita@example.org",
        "roles": ["auditor", "reviewer"],
        "has_password": True,
    }
    assert "argon2" not in str(event.details)


def test_disabled_user_can_neither_sign_in_nor_act(world: World) -> None:
    with unit_of_work(world.sf) as session:
        users.set_password(
            session, user_id=world.reviewer, password="long enough pass", actor="admin@example.org"
        )
        users.disable_user(session, user_id=world.reviewer, actor="admin@example.org")
    with world.sf() as session, pytest.raises(AuthenticationFailed):
        users.authenticate(session, email="reviewer@example.org", password="long enough pass")
    with (
        world.sf() as session,
        pytest.raises(RoleRequired, match="user reviewer@example.org is disabled for x"),
    ):
        users.require_role(session, email="reviewer@example.org", roles=["reviewer"], action="x")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"email": "not-an-email"}, "'not-an-email' is not an email address"),
        ({"email": "admin@example.org"}, "user admin@example.org already exists"),
        ({"roles": ["superuser"]}, "unknown role 'superuser'"),
        ({"roles": []}, "a user needs at least one role"),
        ({"password": "short"}, "password too short: at least 12 characters"),
    ],
)
def test_add_user_refusals(world: World, kwargs: dict, message: str) -> None:
    args = {"email": "new@example.org", "roles": ["operator"], "actor": "admin@example.org", **kwargs}
    before = (count(world.sf, User), count(world.sf, AuditEvent))
    with pytest.raises(ValidationFailed, match=message), unit_of_work(world.sf) as session:
        users.add_user(session, **args)
    assert (count(world.sf, User), count(world.sf, AuditEvent)) == before


def test_subject_refusals(world: World) -> None:
    before = count(world.sf, Subject)
    cases = [
        ({"reference": "S-1"}, ValidationFailed, "subject reference S-1 already exists"),
        ({"reference": "has space"}, ValidationFailed, "must be 1-100 letters"),
        ({"display_name": " "}, ValidationFailed, "display name is empty"),
        ({"created_by": world.operator}, RoleRequired, "lacks role compliance or admin for subject.create"),
        ({"created_by": "ghost"}, NotFound, "user ghost not found"),
    ]
    for overrides, error, message in cases:
        args = {"reference": "S-2", "display_name": "Someone", "created_by": world.compliance, **overrides}
        with pytest.raises(error, match=message), unit_of_work(world.sf) as session:
            subjects.add_subject(session, **args)  # type: ignore[arg-type]
    assert count(world.sf, Subject) == before
    with world.sf() as session:
        assert subjects.find_subject(session, "S-1").id == world.subject


def test_batch_creates_submitted_jobs(world: World) -> None:
    job_id = world.batch_job()
    with world.sf() as session:
        job = session.get_one(Job, job_id)
        batch = batches.get_batch(session, job.batch_id)
    assert (job.state, job.purpose, job.territory, batch.requested_by) == (
        JobState.submitted,
        "advertising",
        "DE",
        world.operator,
    )


def test_batch_refusals_write_nothing(world: World) -> None:
    with unit_of_work(world.sf) as session:
        other = subjects.add_subject(session, reference="S-9", display_name="Other", created_by=world.admin)
        other_portrait = batches.register_asset(
            session,
            kind="portrait",
            bucket="inputs",
            object_key="o.png",
            sha256="3" * 64,
            size_bytes=1,
            actor="x@example.org",
            subject_id=other.id,
        )
    base = {
        "subject_id": world.subject,
        "portrait_asset_id": world.portrait,
        "driving_asset_id": world.driving,
        "purpose": "advertising",
        "channel": "web",
        "territory": "DE",
    }
    cases = [
        ({"subject_id": "ghost"}, NotFound, "job 1: subject ghost not found"),
        ({"portrait_asset_id": "ghost"}, NotFound, "job 1: asset ghost not found"),
        (
            {"portrait_asset_id": world.driving},
            ValidationFailed,
            f"job 1: asset {world.driving} is a driving_video, not a portrait",
        ),
        ({"driving_asset_id": world.portrait}, ValidationFailed, "is a portrait, not a driving_video"),
        ({"portrait_asset_id": other_portrait.id}, ValidationFailed, "belongs to another subject"),
        ({"territory": "Narnia"}, ValidationFailed, "job 1: unknown territory 'Narnia'"),
    ]
    before = (count(world.sf, Batch), count(world.sf, Job), count(world.sf, AuditEvent))
    for overrides, error, message in cases:
        spec = batches.NewJob.model_validate({**base, **overrides})
        with pytest.raises(error, match=message), unit_of_work(world.sf) as session:
            batches.create_batch(session, name="b", requested_by=world.operator, jobs=[spec])
    with (
        pytest.raises(ValidationFailed, match="batch 'empty' has no jobs"),
        unit_of_work(world.sf) as session,
    ):
        batches.create_batch(session, name="empty", requested_by=world.operator, jobs=[])
    assert (count(world.sf, Batch), count(world.sf, Job), count(world.sf, AuditEvent)) == before
    with pytest.raises(RoleRequired, match="lacks role operator or admin for batch.create"):
        with unit_of_work(world.sf) as session:
            batches.create_batch(
                session, name="b", requested_by=world.reviewer, jobs=[batches.NewJob.model_validate(base)]
            )
    assert (count(world.sf, Batch), count(world.sf, Job)) == before[:2]


def test_asset_refusals(world: World) -> None:
    cases = [
        ({"kind": "hologram"}, "unknown asset kind 'hologram'"),
        ({"sha256": "xyz"}, "asset sha256 'xyz' is not a SHA-256"),
        ({"size_bytes": -1}, "asset size -1 is negative"),
        ({"object_key": ""}, "needs a bucket and an object key"),
    ]
    for overrides, message in cases:
        args = {
            "kind": AssetKind.portrait,
            "bucket": "inputs",
            "object_key": "k",
            "sha256": "4" * 64,
            "size_bytes": 1,
            "actor": "x@example.org",
            **overrides,
        }
        with pytest.raises(ValidationFailed, match=message), unit_of_work(world.sf) as session:
            batches.register_asset(session, **args)  # type: ignore[arg-type]


def test_likeness_references(world: World) -> None:
    with unit_of_work(world.sf) as session:
        ref = subjects.add_reference(
            session,
            subject_id=world.subject,
            bucket="inputs",
            object_key="ref.jpg",
            sha256="A" * 64,
            created_by=world.compliance,
        )
    assert ref.sha256 == "a" * 64
    with world.sf() as session:
        assert [r.id for r in subjects.active_references(session, world.subject)] == [ref.id]
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "subject.reference_added")
        ).one()
    assert (event.subject_id, event.resource_id, event.details["sha256"]) == (world.subject, ref.id, "a" * 64)
    cases = [
        ({"subject_id": "ghost"}, NotFound, "subject ghost not found"),
        ({"sha256": "zz"}, ValidationFailed, "reference sha256 'zz' is not a SHA-256"),
        ({"object_key": ""}, ValidationFailed, "needs a bucket and an object key"),
        (
            {"created_by": world.operator},
            RoleRequired,
            "lacks role compliance or admin for subject.add_reference",
        ),
    ]
    for overrides, error, message in cases:
        args = {
            "subject_id": world.subject,
            "bucket": "inputs",
            "object_key": "r2.jpg",
            "sha256": "b" * 64,
            "created_by": world.compliance,
            **overrides,
        }
        with pytest.raises(error, match=message), unit_of_work(world.sf) as session:
            subjects.add_reference(session, **args)  # type: ignore[arg-type]
    with world.sf() as session:
        assert len(subjects.active_references(session, world.subject)) == 1
