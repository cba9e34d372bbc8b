"""The flows sign a checkpoint when they end: after a batch (which publishes), after a takedown, and on schedule.

Real SQLite, SeaweedFS with object lock, the tiny MCNet and Prefect's test API (the `flow_world` fixture).
"""

from __future__ import annotations

import pytest

from flows.audit.checkpoints import audit_verifier, stored_notes
from flows.audit.flow import audit_checkpoint
from flows.batch.flow import nightly_batch
from flows.takedown.flow import takedown
from governance.audit import ledger as audit_ledger
from governance.audit import record as audit
from governance.audit.note import open_checkpoint
from governance.enums import JobState
from governance.uow import unit_of_work
from tests.flows.conftest import FlowWorld


def checkpoint_sizes(world: FlowWorld) -> list[int]:
    verifier = audit_verifier(world.rt.settings)
    return sorted(open_checkpoint(verifier, note.text).size for note in stored_notes(world.rt.settings))


def head_seq(world: FlowWorld) -> int:
    with unit_of_work(world.sessions) as session:
        head = audit.chain_head(session)
    return head[0] if head else 0


@pytest.mark.slow
def test_batch_publication_and_takedown_each_leave_a_checkpoint(flow_world: FlowWorld) -> None:
    world = flow_world
    world.add_subject("S-1")
    consent_id = world.grant("S-1")
    batch_id = world.submit([{"subject": "S-1"}])
    [job_id] = world.job_ids(batch_id)
    assert checkpoint_sizes(world) == []

    assert nightly_batch(batch_id=batch_id) == {job_id: "published"}
    after_batch = head_seq(world)
    # Written when the publication ended; the batch's own (nothing appended since) finds it stored.
    assert checkpoint_sizes(world) == [after_batch]

    world.revoke(consent_id)
    assert takedown() == [job_id]
    assert world.state(job_id) == JobState.taken_down
    assert checkpoint_sizes(world)[-1] == head_seq(world) > after_batch

    # The scheduled flow: nothing new, so nothing new is stored; the log checks against all of them.
    result = audit_checkpoint()
    assert result["size"] == head_seq(world) and result["written"] is False
    with unit_of_work(world.sessions) as session:
        report = audit_ledger.verify_log(
            session, stored_notes(world.rt.settings), audit_verifier(world.rt.settings)
        )
    assert report.ok and report.checkpoints == 2, report.message
