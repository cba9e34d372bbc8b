"""Which live publications must come down: the takedown queue, derived from the consents themselves.

A publication is due for takedown while it is live (`taken_down_at` unset) and either the consent it
was made under has been revoked (whatever else the subject agreed to), or no consent in force covers
its use any more (amended so it no longer covers it, expired, not yet valid). The queue is not a
table of its own but a question asked of the consents, so a revocation recorded through any door
(CLI, console, Python API, a direct `governance.consent.revoke`) queues its takedowns in the same
transaction that revokes, and a publication recorded while the revocation was under way is caught
too. `flows.takedown.steps` takes the due publications down; the `takedown` sweep retries until none is
left. Read-only: nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import consent
from governance.errors import ConsentError
from governance.schema import Consent, Job, Publication
from governance.types import utcnow


@dataclass(frozen=True)
class DueTakedown:
    """A live publication that must be taken down, where it lies, and why."""

    publication_id: str
    job_id: str
    subject_id: str
    bucket: str
    object_key: str
    reason: str


def due_reason(session: Session, job: Job, *, at: datetime | None = None) -> str | None:
    """Why the job's publication must come down now (its consent revoked or no longer covering it), or None."""
    at = at or utcnow()
    use = {"purpose": job.purpose, "channel": job.channel, "territory": job.territory}
    lapsed = consent.lapse(session, consent_id=job.consent_id, at=at, **use) if job.consent_id else None
    if lapsed is not None and consent.current_version(session, str(job.consent_id)).revoked_at is not None:
        return lapsed  # a revocation takes down what was made under it, whatever else covers the use
    try:
        consent.verify(session, subject_id=job.subject_id, at=at, **use)
    except ConsentError as exc:
        return lapsed or str(exc)
    return None


def takedowns_due(
    session: Session,
    *,
    consent_id: str | None = None,
    subject_id: str | None = None,
    publication_id: str | None = None,
    at: datetime | None = None,
) -> list[DueTakedown]:
    """Live publications due for takedown, oldest first: of one consent's lineage, one subject, one, or all."""
    at = at or utcnow()
    statement = (
        select(Publication, Job)
        .join(Job, Job.id == Publication.job_id)
        .where(Publication.taken_down_at.is_(None))
    )
    if consent_id is not None:
        lineage = consent.get_consent(session, consent_id).lineage_id
        statement = statement.where(
            Job.consent_id.in_(select(Consent.id).where(Consent.lineage_id == lineage))
        )
    if subject_id is not None:
        statement = statement.where(Job.subject_id == subject_id)
    if publication_id is not None:
        statement = statement.where(Publication.id == publication_id)
    due: list[DueTakedown] = []
    for publication, job in session.execute(
        statement.order_by(Publication.published_at, Publication.id)
    ).tuples():
        reason = due_reason(session, job, at=at)
        if reason is not None:
            due.append(
                DueTakedown(
                    publication.id, job.id, job.subject_id, publication.bucket, publication.object_key, reason
                )
            )
    return due
