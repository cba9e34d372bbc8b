"""Consent: grant, amend, revoke, expiry and verify, with every refusal checked for message and state."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from governance import consent, errors
from governance.schema import AuditEvent, Consent
from governance.types import utcnow
from governance.uow import unit_of_work
from tests.governance.helpers import World, audit_actions, count


def verify(world: World, **kw: object) -> Consent:
    args: dict[str, object] = {
        "subject_id": world.subject,
        "purpose": "advertising",
        "channel": "web",
        "territory": "DE",
    }
    args.update(kw)
    with world.sf() as session:
        return consent.verify(session, **args)  # type: ignore[arg-type]


def test_grant_records_version_one_and_audits(world: World) -> None:
    granted = world.grant(territories=["FR", "DE", "DE"])
    assert (granted.version, granted.lineage_id, granted.territories) == (1, granted.id, ["DE", "FR"])
    assert granted.evidence_sha256 == world.evidence_sha256
    with world.sf() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "consent.granted")).one()
    assert (event.actor, event.subject_id, event.resource_id) == (
        "compliance@example.org",
        world.subject,
        granted.id,
    )
    assert event.details["territories"] == ["DE", "FR"] and event.details["version"] == 1
    assert verify(world).id == granted.id


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"subject_id": "no-such-subject"}, errors.NotFound, "subject no-such-subject not found"),
        (
            {"valid_from": utcnow() + timedelta(days=10), "valid_until": utcnow() + timedelta(days=5)},
            errors.ValidationFailed,
            r"valid_until .* is not after valid_from",
        ),
        (
            {"valid_from": utcnow() - timedelta(days=10), "valid_until": utcnow() - timedelta(days=1)},
            errors.ValidationFailed,
            "valid_until .* is in the past: a consent's validity must end in the future",
        ),
        (
            {"purposes": ["advertising", "propaganda"]},
            errors.ValidationFailed,
            "unknown purpose 'propaganda'",
        ),
        ({"channels": ["carrier_pigeon"]}, errors.ValidationFailed, "unknown channel 'carrier_pigeon'"),
        ({"territories": ["XX"]}, errors.ValidationFailed, "unknown territory 'XX'"),
        ({"territories": []}, errors.ValidationFailed, "at least one territory is required"),
        (
            {"evidence_path": Path("/nonexistent/consent.pdf")},
            errors.ValidationFailed,
            "evidence file /nonexistent/consent.pdf not found",
        ),
        ({"evidence_sha256": "0" * 64}, errors.ValidationFailed, r"has sha256 [0-9a-f]{64}, expected 0{64}"),
        (
            {"evidence_sha256": "not-a-hash"},
            errors.ValidationFailed,
            "evidence sha256 'not-a-hash' is not a SHA-256",
        ),
        ({"evidence_key": " "}, errors.ValidationFailed, "evidence key is empty"),
    ],
)
def test_grant_refuses_bad_input_and_writes_nothing(
    world: World, overrides: dict, error: type, message: str
) -> None:
    before = count(world.sf, AuditEvent)
    with pytest.raises(error, match=message):
        world.grant(**overrides)
    assert count(world.sf, Consent) == 0
    assert count(world.sf, AuditEvent) == before


def test_grant_needs_compliance_role_and_the_refusal_is_audited(world: World) -> None:
    before = count(world.sf, AuditEvent)
    with pytest.raises(
        errors.RoleRequired,
        match="user operator@example.org lacks role compliance or admin for consent.grant",
    ):
        world.grant(recorded_by=world.operator)
    assert count(world.sf, Consent) == 0
    assert count(world.sf, AuditEvent) == before + 1
    with world.sf() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert event is not None and (event.action, event.actor) == ("access.denied", "operator@example.org")
    assert event.details["attempted"] == "consent.grant"


def test_amend_writes_a_new_version_and_keeps_the_old(world: World) -> None:
    v1 = world.grant()
    with unit_of_work(world.sf) as session:
        v2 = consent.amend(
            session,
            consent_id=v1.id,
            recorded_by=world.compliance,
            reason="adds Austria",
            territories=["AT", "DE", "FR"],
        )
    assert (v2.version, v2.lineage_id, v2.territories) == (2, v1.id, ["AT", "DE", "FR"])
    with world.sf() as session:
        old = session.get_one(Consent, v1.id)
        assert old.territories == ["DE", "FR"] and old.superseded_by_id == v2.id
        assert [c.version for c in consent.history(session, v1.id)] == [1, 2]
        assert [c.id for c in consent.list_consents(session, subject_id=world.subject)] == [v2.id]
    assert verify(world, territory="AT").id == v2.id
    with world.sf() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "consent.amended")).one()
    assert event.details["changes"] == {"territories": {"from": ["DE", "FR"], "to": ["AT", "DE", "FR"]}}


def test_amend_refusals(world: World, tmp_path: Path) -> None:
    v1 = world.grant()
    with unit_of_work(world.sf) as session:
        v2 = consent.amend(
            session, consent_id=v1.id, recorded_by=world.compliance, reason="r", channels=["social_media"]
        )
    cases = [
        ({"consent_id": v1.id}, errors.ValidationFailed, f"consent {v1.id} was superseded by {v2.id}"),
        ({"consent_id": "nope"}, errors.NotFound, "consent nope not found"),
        ({"consent_id": v2.id}, errors.ValidationFailed, "changes nothing"),
        (
            {"consent_id": v2.id, "reason": " ", "channels": ["web"]},
            errors.ValidationFailed,
            "needs a reason",
        ),
        (
            {"consent_id": v2.id, "valid_until": utcnow() - timedelta(hours=1)},
            errors.ValidationFailed,
            "valid_until .* is in the past: a consent's validity must end in the future",
        ),
        (
            {
                "consent_id": v2.id,
                "evidence_path": tmp_path / "missing.pdf",
                "evidence_sha256": "1" * 64,
                "evidence_key": "k",
            },
            errors.ValidationFailed,
            "not found",
        ),
    ]
    before = (count(world.sf, Consent), count(world.sf, AuditEvent))
    for overrides, error, message in cases:
        args = {"recorded_by": world.compliance, "reason": "because", **overrides}
        with pytest.raises(error, match=message), unit_of_work(world.sf) as session:
            consent.amend(session, **args)  # type: ignore[arg-type]
        assert (count(world.sf, Consent), count(world.sf, AuditEvent)) == before


def test_revoke_once_then_verify_says_revoked(world: World) -> None:
    granted = world.grant()
    with unit_of_work(world.sf) as session:
        consent.revoke(session, consent_id=granted.id, revoked_by=world.compliance, reason="subject withdrew")
    with pytest.raises(
        errors.ConsentRevoked,
        match=f"consent {granted.id} for subject .* covers advertising/web/DE but is revoked at",
    ):
        verify(world)
    before = count(world.sf, AuditEvent)
    with pytest.raises(errors.AlreadyRevoked, match=f"consent {granted.id} was already revoked at"):
        with unit_of_work(world.sf) as session:
            consent.revoke(session, consent_id=granted.id, revoked_by=world.compliance, reason="again")
    assert count(world.sf, AuditEvent) == before
    with world.sf() as session:
        row = session.get_one(Consent, granted.id)
    assert row.revoke_reason == "subject withdrew"
    assert audit_actions(world.sf).count("consent.revoked") == 1
    with (
        pytest.raises(errors.ConsentRevoked, match="is revoked: grant a new consent"),
        unit_of_work(world.sf) as session,
    ):
        consent.amend(
            session, consent_id=granted.id, recorded_by=world.compliance, reason="r", channels=["events"]
        )


def test_verify_errors_are_specific(world: World) -> None:
    with pytest.raises(errors.ConsentMissing, match=f"subject {world.subject} has no consent"):
        verify(world)
    with pytest.raises(errors.NotFound, match="subject ghost not found"):
        verify(world, subject_id="ghost")
    with pytest.raises(errors.ValidationFailed, match="unknown purpose 'spam'"):
        verify(world, purpose="spam")
    now = utcnow()
    future = world.grant(valid_from=now + timedelta(days=30), valid_until=now + timedelta(days=60))
    with pytest.raises(errors.ConsentNotYetValid, match=f"consent {future.id} .* is valid from"):
        verify(world)
    assert verify(world, at=now + timedelta(days=31)).id == future.id
    with pytest.raises(errors.ConsentExpired, match=f"consent {future.id} .* is expired at"):
        verify(world, at=now + timedelta(days=61))
    with pytest.raises(
        errors.ConsentScopeError, match="no consent of subject .* covers purpose 'editorial'$"
    ):
        verify(world, purpose="editorial")
    with pytest.raises(errors.ConsentScopeError, match="covers channel 'broadcast'$"):
        verify(world, channel="broadcast")
    with pytest.raises(errors.ConsentScopeError, match="covers territory 'US'$"):
        verify(world, territory="US")
    with pytest.raises(errors.ConsentScopeError, match="covers channel 'broadcast', territory 'US'$"):
        verify(world, channel="broadcast", territory="US")


def test_verify_picks_the_consent_in_force_among_several(world: World) -> None:
    now = utcnow()
    world.grant(valid_from=now - timedelta(days=10), valid_until=now + timedelta(minutes=1))
    worldwide = world.grant(territories=["WORLD"], channels=["web", "broadcast"])
    assert verify(world, territory="US", channel="broadcast").id == worldwide.id
    with unit_of_work(world.sf) as session:
        consent.revoke(session, consent_id=worldwide.id, revoked_by=world.admin, reason="r")
    # The DE consent still covers DE; nothing covers US any more, and the error says revoked.
    assert verify(world).territories == ["DE", "FR"]
    with pytest.raises(errors.ConsentRevoked):
        verify(world, territory="US")


def test_expiring_lists_consents_about_to_end(world: World) -> None:
    now = utcnow()
    soon = world.grant(valid_until=now + timedelta(days=3))
    world.grant(valid_until=now + timedelta(days=300))
    world.grant(valid_until=None)
    with world.sf() as session:
        assert [c.id for c in consent.expiring(session, within=timedelta(days=7))] == [soon.id]
