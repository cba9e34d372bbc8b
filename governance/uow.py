"""The unit of work: services only flush; this commits, rolls back, and records refusals.

When a service refuses on governance grounds (four eyes, a role, a second decision...) the error carries
a `Refusal`. The refused work is rolled back, and then the refusal alone is appended to the audit log in
its own transaction: nothing half-written stays behind, but the attempt is on record.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from sqlalchemy.orm import Session, sessionmaker

from governance.audit import record as audit
from governance.errors import GovernanceError, Refusal

log = logging.getLogger(__name__)


def record_refusal(session_factory: sessionmaker[Session], refusal: Refusal) -> None:
    """Append a refusal's audit event in a transaction of its own."""
    with session_factory() as session, session.begin():
        audit.record(
            session,
            action=refusal.action,
            actor=refusal.actor,
            subject_id=refusal.subject_id,
            job_id=refusal.job_id,
            resource_type=refusal.resource_type,
            resource_id=refusal.resource_id,
            details=refusal.details,
        )
    log.info("refusal recorded: %s by %s", refusal.action, refusal.actor)


@contextlib.contextmanager
def unit_of_work(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success; on error roll back, then audit a governance refusal if any."""
    session = session_factory()
    try:
        with session.begin():
            yield session
    except GovernanceError as exc:
        session.close()
        if exc.refusal is not None:
            record_refusal(session_factory, exc.refusal)
        raise
    finally:
        session.close()
