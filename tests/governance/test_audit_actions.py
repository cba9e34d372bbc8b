"""The audit vocabulary: one closed list of past-tense event names, kept apart from attempted operations."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from governance.audit import record as audit
from governance.audit.actions import ACTION_PATTERN, AuditAction, job_event, model_event
from governance.enums import JobState, ModelStatus
from governance.schema import AuditEvent
from governance.uow import unit_of_work
from governance.users import require_role
from tests.governance.helpers import World, count


def test_every_member_is_a_dotted_name_and_every_state_has_its_event() -> None:
    assert all(ACTION_PATTERN.match(action.value) for action in AuditAction)
    assert [job_event(state).value for state in JobState] == [f"job.{state.value}" for state in JobState]
    assert {model_event(status) for status in ModelStatus} == {
        AuditAction.MODEL_ACTIVE,
        AuditAction.MODEL_RETIRED,
        AuditAction.MODEL_CONSENT_WITHDRAWN,
    }
    # Stored values compare equal to the members (the chain hashes the plain strings).
    assert AuditAction.CONSENT_GRANTED == "consent.granted"
    assert AuditAction.PUBLICATION_TAKEN_DOWN == "publication.taken_down"


def test_a_member_is_stored_as_its_plain_string(world: World) -> None:
    with unit_of_work(world.sf) as session:
        event = audit.record(session, action=AuditAction.DB_UPGRADED, actor="system:test")
        event_id = event.id
    with world.sf() as session:
        stored = session.scalars(select(AuditEvent).where(AuditEvent.id == event_id)).one()
        assert type(stored.action) is str and stored.action == "db.upgraded"
        assert audit.verify_chain(session).ok


@pytest.mark.parametrize("name", ["consent.granted", "publication.taken_down"])
def test_require_role_refuses_an_event_name_as_the_attempted_operation(world: World, name: str) -> None:
    before = count(world.sf, AuditEvent)
    with pytest.raises(ValueError, match=f"'{name}' is an audit event: require_role takes the attempted"):
        with unit_of_work(world.sf) as session:
            require_role(session, user_id=world.admin, roles=["admin"], action=name)
    assert count(world.sf, AuditEvent) == before
