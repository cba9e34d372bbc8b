"""The publish half of a job: claim, consent again, mark and publish once.

Consent can be revoked while a job waits for review, so it is verified again right before delivery.
Publication happens at most once per job: the `publications` row is unique per job, the object key is
deterministic, and a re-run that finds the row only completes the job's state instead of publishing
again.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from flows.jobs.claims import HolderCheck, claim
from flows.jobs.data import clear_workspace
from flows.runtime.root import Runtime
from governance import jobs
from governance.enums import JobState
from governance.errors import ConsentError
from governance.schema import Publication
from governance.uow import unit_of_work

logger = logging.getLogger(__name__)

ACTOR = "system:publish"


def claim_publish(
    rt: Runtime, job_id: str, *, run_id: str, holder_alive: HolderCheck | None = None
) -> JobState:
    """Move an approved job to `publishing` (or re-claim one a crashed run left there); return its state."""
    return claim(
        rt,
        job_id,
        run_id=run_id,
        start=JobState.approved,
        to=JobState.publishing,
        holder_alive=holder_alive,
        actor=ACTOR,
    )


def existing_publication(rt: Runtime, job_id: str) -> str | None:
    """The published object key if this job was already published (by a run that crashed after it)."""
    with unit_of_work(rt.sessions) as session:
        found = session.scalars(select(Publication).where(Publication.job_id == job_id)).first()
        return found.object_key if found is not None else None


def publish(rt: Runtime, job_id: str) -> JobState:
    """Mark (label, watermark, C2PA) and publish the approved render once; returns the job's state.

    `refused` when the consent stopped covering the job at the last moment (`mark_and_publish` checks
    it again right before marking, and records the refusal on the job).
    """
    from flows.publish.delivery import mark_and_publish

    key = existing_publication(rt, job_id)
    if key is None:
        remove_unrecorded_upload(rt, job_id)
        try:
            key = mark_and_publish(rt, job_id=job_id, actor=ACTOR).object_key
        except ConsentError as exc:
            logger.info("job %s refused at delivery: %s", job_id, exc)
            clear_workspace(rt.workspace_root, job_id)
            return JobState.refused
    complete(rt, job_id, key=key)
    clear_workspace(rt.workspace_root, job_id)  # the unmarked render and the inputs leave the worker's disk
    return JobState.published


def remove_unrecorded_upload(rt: Runtime, job_id: str) -> None:
    """Delete what a killed run uploaded to the job's published key without recording it.

    Without a `publications` row nothing at that key was ever delivered on our record; leaving it would
    keep an unrecorded version (with another watermark) in the versioned bucket next to the one about to
    be published. Audited as `publication.orphan_removed`.
    """
    from flows.publish.delivery import PUBLISHED_NAME
    from governance.publications import record_orphan_removed
    from pipeline.storage.objects import object_key

    key = object_key(job_id, PUBLISHED_NAME)
    removed = rt.store.delete("published", key)
    if removed:
        with unit_of_work(rt.sessions) as session:
            record_orphan_removed(
                session,
                job_id=job_id,
                actor=ACTOR,
                bucket=rt.store.bucket_name("published"),
                key=key,
                versions=removed,
            )
        logger.warning(
            "job %s: removed %d unrecorded version(s) of %s left by a killed run", job_id, removed, key
        )


def complete(rt: Runtime, job_id: str, *, key: str) -> None:
    """Move the job from `publishing` to `published` (a no-op when a previous run already did)."""
    with unit_of_work(rt.sessions) as session:
        job = jobs.get_job(session, job_id)
        if job.state == JobState.publishing:
            jobs.transition(session, job, to=JobState.published, actor=ACTOR, details={"object_key": key})
