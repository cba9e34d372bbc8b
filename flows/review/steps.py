"""The human gate: a reviewer's decision, wherever it is taken, goes through one function.

The render flow ends a flagged job at `awaiting_review` and exits, so nobody holds a worker or a GPU
while a person decides. The decision is then applied by `apply_decision` — from the CLI
(`likeness review approve|reject`) or the web console, the two surfaces that know who the reviewer is
(there is no Prefect UI form: Prefect's open-source UI has no sign-in, see docs/flows.md) — which
records it through `governance.review.decide` (reviewer role, four eyes, once only, with the
reviewer's identity: Prefect does not record who resumed a run) and, on approval, queues the publish
flow (`flows.publish.queue`), which verifies consent once more; the decision returns at once. `expire_review` rejects a job whose review window has
passed (the `review-timeout-sweep` flow in `flows.review.flow` finds them), and says so in the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flows.jobs.data import clear_workspace
from flows.publish.queue import PublishTicket, queue_publish
from flows.runtime.root import Runtime
from governance import jobs, review
from governance.enums import JobState, Verdict
from governance.uow import unit_of_work
from governance.users import get_user_by_email

logger = logging.getLogger(__name__)

TIMEOUT_ACTOR = "system:review-timeout"


@dataclass(frozen=True)
class DecisionResult:
    """What applying a decision did: the verdict recorded, the job's state after it, the published key."""

    job_id: str
    decision_id: str
    verdict: str
    state: str
    published_key: str | None
    publishing: PublishTicket | None = None  # the queued publication (approvals with publish=True)


def apply_decision(
    rt: Runtime,
    *,
    job_id: str,
    reviewer_email: str,
    verdict: Verdict | str,
    reason: str,
    publish: bool = True,
) -> DecisionResult:
    """Record a reviewer's verdict on a job awaiting review; on approval, queue its publication.

    The one code path for every review surface. Governance refuses (and audits the refusal) when the
    user lacks the reviewer role, requested the batch (four eyes), or the job was decided already.
    The decision returns as soon as it is recorded: publishing is queued as a `publish-job` run
    (`flows.publish.queue.queue_publish`: a deployment run, or a background thread here), whose ticket
    is `result.publishing`; `flows.publish.queue.publish_status` says how it went. With
    `publish=False` the approved job is left for the `publish-approved` deployment.

    Raises:
        governance.errors.GovernanceError: the refusal (`RoleRequired`, `FourEyesViolation`,
            `AlreadyDecided`, `NotFound`, `ValidationFailed`, `InvalidTransition`), one line.
    """
    with unit_of_work(rt.sessions) as session:
        reviewer = get_user_by_email(session, reviewer_email)
        decision = review.decide(
            session, job_id=job_id, reviewer_id=reviewer.id, verdict=verdict, reason=reason
        )
        decision_id, chosen = decision.id, Verdict(decision.verdict)
        if publish and chosen == Verdict.approve:
            from flows.runtime.orchestrator import require_api

            # Governance has accepted the decision; before it commits, make sure its publication can be
            # queued: an unreachable Prefect API rolls the approval back whole (one line, PREFECT_API_URL).
            require_api(rt.settings)
    state = JobState.rejected if chosen == Verdict.reject else JobState.approved
    if state == JobState.rejected:
        clear_workspace(rt.workspace_root, job_id)  # no local copy outlives the job
    ticket = None
    if chosen == Verdict.approve and publish:
        ticket = queue_publish(rt, job_id, requested_by=reviewer_email)
    logger.info("review of job %s: %s by %s; job now %s", job_id, chosen.value, reviewer_email, state.value)
    return DecisionResult(
        job_id=job_id,
        decision_id=decision_id,
        verdict=chosen.value,
        state=state.value,
        published_key=None,
        publishing=ticket,
    )


def expire_review(rt: Runtime, job_id: str) -> JobState:
    """Reject a job whose review window passed; audited as `review.timed_out` with the job's rejection."""
    with unit_of_work(rt.sessions) as session:
        if not review.expire(session, job_id=job_id, actor=TIMEOUT_ACTOR):
            return JobState(jobs.get_job(session, job_id).state)
    clear_workspace(rt.workspace_root, job_id)
    logger.info("job %s rejected: review window passed", job_id)
    return JobState.rejected
