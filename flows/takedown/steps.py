"""Revoking or narrowing a consent takes its publications down: one code path for CLI, console and Python.

`revoke_consent` and `amend_consent` record the change through governance (which, in the same
transaction, makes every affected live publication due for takedown: `governance.withdrawals`), then
take the due publications down at once. If the storage is unreachable the change still stands and the
takedowns stay due: `take_down_due` (run by the `takedown` sweep every ten minutes, or by
`likeness publication sweep`) retries them until none is left. Plain functions, no Prefect, so every
surface calls the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from governance import consent, withdrawals
from governance import publications as pubs
from governance.errors import InvalidTransition, ValidationFailed
from governance.uow import unit_of_work
from governance.users import get_user_by_email, require_role
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from pipeline.storage.objects import ObjectStore, TakedownResult

logger = logging.getLogger(__name__)

# The store, or how to get it: the console's runtime connects (and ensures buckets) on first use, which
# must not happen before the revocation is recorded, nor at all when nothing is due.
StoreSource = Union["ObjectStore", Callable[[], "ObjectStore"]]

RETRY_HINT = "the takedown sweep retries every 10 minutes; `likeness publication sweep` retries now"


@dataclass(frozen=True)
class TakedownOutcome:
    """One due publication: where it lies, and what happened (taken down, or why it is still queued)."""

    publication_id: str
    job_id: str
    bucket: str
    object_key: str
    done: bool
    detail: str

    @property
    def where(self) -> str:
        return f"{self.bucket}/{self.object_key}"


@dataclass(frozen=True)
class WithdrawalReport:
    """What a revocation, an amendment or a sweep took down, and what is still queued."""

    taken_down: tuple[TakedownOutcome, ...] = ()
    queued: tuple[TakedownOutcome, ...] = ()

    def lines(self) -> list[str]:
        """One line per publication, for the CLI and the console's message."""
        out = [
            f"taken down: publication {o.publication_id} (job {o.job_id}) at {o.where}: {o.detail}"
            for o in self.taken_down
        ]
        out += [
            f"takedown QUEUED: publication {o.publication_id} (job {o.job_id}) at {o.where}: {o.detail}"
            for o in self.queued
        ]
        return out


@dataclass(frozen=True)
class ConsentChange:
    """The consent version a revocation or an amendment left in force, and the takedowns it caused."""

    consent_id: str
    version: int
    report: WithdrawalReport = field(default_factory=WithdrawalReport)


def take_down_due(
    sessions: sessionmaker[Session],
    store: StoreSource,
    *,
    consent_id: str | None = None,
    subject_id: str | None = None,
    actor_email: str | None = None,
    actor: str | None = None,
) -> WithdrawalReport:
    """Take down every publication due (of one consent lineage, one subject, or all); queue what storage refuses.

    A storage failure leaves that publication due (it is retried by the next call) and is reported;
    a publication another worker took down meanwhile is skipped. Governance errors (the actor may not
    take down) are raised before storage is touched.
    """

    with unit_of_work(sessions) as session:
        due = withdrawals.takedowns_due(session, consent_id=consent_id, subject_id=subject_id)
    done: list[TakedownOutcome] = []
    queued: list[TakedownOutcome] = []
    for item in due:
        try:
            if callable(store):
                store = store()
            report = takedown_publication(
                sessions,
                store,
                publication_id=item.publication_id,
                reason=item.reason,
                actor_email=actor_email,
                actor=actor,
            )
        except InvalidTransition:
            continue  # taken down by someone else since the list was read
        except PipelineError as exc:
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            logger.warning("takedown of publication %s queued: %s", item.publication_id, why)
            queued.append(
                TakedownOutcome(
                    item.publication_id,
                    item.job_id,
                    item.bucket,
                    item.object_key,
                    False,
                    f"{why}; {RETRY_HINT}",
                )
            )
            continue
        storage = report.storage
        detail = f"{len(storage.deleted_versions)} version(s) deleted, {len(storage.held_versions)} held"
        if storage.delete_marker:
            detail += ", delete marker set"
        done.append(
            TakedownOutcome(item.publication_id, item.job_id, item.bucket, item.object_key, True, detail)
        )
    return WithdrawalReport(tuple(done), tuple(queued))


def revoke_consent(
    sessions: sessionmaker[Session], store: StoreSource, *, consent_id: str, actor_email: str, reason: str
) -> ConsentChange:
    """Revoke the consent (governance; audited), then take down every live publication made under it.

    The revocation is committed first and stands whatever the storage does; a takedown the storage
    refuses stays queued (see the module docstring) and is listed in the report.
    """
    with unit_of_work(sessions) as session:
        user = get_user_by_email(session, actor_email)
        revoked = consent.revoke(session, consent_id=consent_id, revoked_by=user.id, reason=reason)
        change = ConsentChange(revoked.id, revoked.version)
    report = take_down_due(sessions, store, consent_id=change.consent_id, actor_email=actor_email)
    return ConsentChange(change.consent_id, change.version, report)


def amend_consent(
    sessions: sessionmaker[Session],
    store: StoreSource,
    *,
    consent_id: str,
    actor_email: str,
    reason: str,
    **changes: Any,
) -> ConsentChange:
    """Amend the consent (governance; audited), then take down the publications the new version no longer covers."""
    with unit_of_work(sessions) as session:
        user = get_user_by_email(session, actor_email)
        new = consent.amend(session, consent_id=consent_id, recorded_by=user.id, reason=reason, **changes)
        change = ConsentChange(new.id, new.version)
    report = take_down_due(sessions, store, consent_id=change.consent_id, actor_email=actor_email)
    return ConsentChange(change.consent_id, change.version, report)


@dataclass(frozen=True)
class TakedownReport:
    """One publication taken down: what the storage did and who recorded it."""

    publication_id: str
    job_id: str
    storage: TakedownResult
    taken_down_by: str
    reason: str


def takedown_publication(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    *,
    publication_id: str,
    reason: str,
    actor_email: str | None = None,
    actor: str | None = None,
    retain: bool = False,
) -> TakedownReport:
    """Remove a publication's object(s) and record who, when and why.

    The storage goes first (slow I/O outside any transaction) and is idempotent, so a failed record
    can simply be retried. With `retain`, versions are kept under legal hold behind a delete marker.
    """
    if not reason or not reason.strip():
        raise ValidationFailed(f"taking down publication {publication_id} needs a reason")
    with unit_of_work(sessions) as session:
        publication = pubs.get_publication(session, publication_id)
        if publication.taken_down_at is not None:
            raise InvalidTransition(f"publication {publication_id} was already taken down")
        if actor_email is not None:  # refuse before touching storage
            require_role(session, email=actor_email, roles=pubs.TAKEDOWN_ROLES, action="publication.takedown")
        bucket, key, job_id = publication.bucket, publication.object_key, publication.job_id
    result = store.takedown(bucket, key, retain=retain)
    storage = {
        "bucket": result.bucket,
        "key": result.key,
        "deleted_versions": list(result.deleted_versions),
        "held_versions": list(result.held_versions),
        "delete_marker": result.delete_marker,
    }
    with unit_of_work(sessions) as session:
        publication = pubs.takedown(
            session,
            publication_id=publication_id,
            actor_email=actor_email,
            actor=actor,
            reason=reason,
            storage=storage,
        )
        who = str(publication.taken_down_by)
    return TakedownReport(publication_id, job_id, result, who, reason.strip())


def takedown_for_consent(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    *,
    consent_id: str,
    reason: str,
    actor_email: str | None = None,
    actor: str | None = None,
) -> list[TakedownReport]:
    """Take down every active publication made under any version of a consent (e.g. after revocation)."""
    with unit_of_work(sessions) as session:
        ids = [p.id for p in pubs.publications_for_consent(session, consent_id)]
    return [
        takedown_publication(
            sessions, store, publication_id=pid, reason=reason, actor_email=actor_email, actor=actor
        )
        for pid in ids
    ]
