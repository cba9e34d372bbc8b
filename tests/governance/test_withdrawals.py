"""The takedown queue (`governance.withdrawals`) and `consent.lapse`, on SQLite and PostgreSQL.

A revocation or a narrowing amendment makes the affected live publications due for takedown in the
same transaction (and says so in its audit event); a publication still covered is not due.
"""

from __future__ import annotations

from sqlalchemy import select

from governance import consent, publications, withdrawals
from governance.schema import AuditEvent
from governance.uow import unit_of_work
from tests.governance.helpers import World


def published_job(w: World, consent_id: str, *, territory: str = "DE") -> tuple[str, str]:
    """A job made under `consent_id` and published (database only); returns (job id, publication id)."""
    job_id = w.publishing_job(consent_id, territory=territory)
    return job_id, w.publish(job_id)


def due(w: World, **kw: str) -> dict[str, str]:
    with unit_of_work(w.sf) as session:
        return {d.publication_id: d.reason for d in withdrawals.takedowns_due(session, **kw)}


def last_event(w: World, action: str) -> AuditEvent:
    with w.sf() as session:
        return session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq.desc())
        ).first()


def test_nothing_is_due_while_the_consent_covers_the_use(world: World) -> None:
    granted = world.grant()
    published_job(world, granted.id)
    assert due(world) == {}
    with unit_of_work(world.sf) as session:
        assert (
            consent.lapse(
                session, consent_id=granted.id, purpose="advertising", channel="web", territory="DE"
            )
            is None
        )


def test_revocation_makes_every_publication_of_the_lineage_due_and_says_so(world: World) -> None:
    granted = world.grant()
    other = world.grant()  # another consent covering the same use does not save a revoked one's videos
    _, first = published_job(world, granted.id)
    _, second = published_job(world, granted.id, territory="FR")
    _, unrelated = published_job(world, other.id)
    with unit_of_work(world.sf) as session:
        consent.revoke(session, consent_id=granted.id, revoked_by=world.compliance, reason="subject withdrew")
    queue = due(world)
    assert set(queue) == {first, second}
    assert queue[first].startswith(f"consent {granted.id} (version 1) was revoked at ")
    assert queue[first].endswith(": subject withdrew")
    assert set(due(world, consent_id=granted.id)) == {first, second} and due(world, consent_id=other.id) == {}
    event = last_event(world, "consent.revoked")
    assert event.details["publications_to_take_down"] == [first, second]
    assert unrelated not in queue
    # Once taken down, a publication leaves the queue.
    with unit_of_work(world.sf) as session:
        publications.takedown(session, publication_id=first, actor="system:test", reason=queue[first])
    assert set(due(world)) == {second}


def test_an_amendment_that_narrows_the_scope_makes_its_publications_due(world: World) -> None:
    granted = world.grant()  # DE and FR
    _, in_de = published_job(world, granted.id, territory="DE")
    _, in_fr = published_job(world, granted.id, territory="FR")
    with unit_of_work(world.sf) as session:
        amended = consent.amend(
            session,
            consent_id=granted.id,
            recorded_by=world.compliance,
            reason="subject leaves France out",
            territories=["DE"],
        )
        amended_id = amended.id
    queue = due(world)
    assert list(queue) == [in_fr]
    assert queue[in_fr] == (
        f"consent {amended_id} (version 2 of lineage {granted.id}) no longer covers "
        "territory 'FR' (territories now DE)"
    )
    assert last_event(world, "consent.amended").details["publications_to_take_down"] == [in_fr]
    assert in_de not in queue
    # A widening amendment takes nothing down.
    with unit_of_work(world.sf) as session:
        consent.amend(
            session,
            consent_id=amended_id,
            recorded_by=world.compliance,
            reason="adds Austria",
            territories=["DE", "AT"],
        )
    assert last_event(world, "consent.amended").details["publications_to_take_down"] == [in_fr]
    assert list(due(world)) == [in_fr]


def test_a_narrowed_use_another_consent_still_covers_is_not_due(world: World) -> None:
    granted = world.grant()
    world.grant(territories=["FR"])  # a second, separate consent for France
    _, in_fr = published_job(world, granted.id, territory="FR")
    with unit_of_work(world.sf) as session:
        consent.amend(
            session, consent_id=granted.id, recorded_by=world.compliance, reason="only DE", territories=["DE"]
        )
    assert due(world) == {}
