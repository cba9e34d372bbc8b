"""The audit log: a hash chain the database refuses to edit, and a walker that names the first break."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.errors import ValidationFailed
from governance.schema import AuditEvent
from governance.types import utcnow
from governance.uow import unit_of_work
from tests.governance.helpers import audit_actions, count

# Any members do: these tests are about the chain, not the vocabulary.
APPENDED, OUTER, INNER = AuditAction.ACCESS_READ, AuditAction.ACCESS_READ, AuditAction.ACCESS_DENIED


def append(sf: sessionmaker[Session], n: int, *, actor: str = "alice@example.org", **kw: object) -> None:
    with unit_of_work(sf) as session:
        for i in range(n):
            audit.record(session, action=APPENDED, actor=actor, details={"i": i, "f": 0.1}, **kw)  # type: ignore[arg-type]


def drop_triggers(engine: Engine) -> None:
    """What an attacker with DDL rights would do first."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_no_update_delete ON audit_events"))


def report(sf: sessionmaker[Session], **kw: object) -> audit.ChainReport:
    with sf() as session:
        return audit.verify_chain(session, **kw)  # type: ignore[arg-type]


def event_id(sf: sessionmaker[Session], seq: int) -> str:
    with sf() as session:
        return session.scalars(select(AuditEvent.id).where(AuditEvent.seq == seq)).one()


def test_chain_links_each_event_to_the_previous(session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 5)
    with session_factory() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == audit.GENESIS_HASH
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    assert all(audit.compute_hash(audit.event_fields(e)) == e.hash for e in events)
    assert events[1].details == {"i": 1, "f": 0.1}
    result = report(session_factory)
    assert result.ok and result.checked == 5 and result.head_seq == 5 and result.head_hash == events[-1].hash


def test_empty_chain_verifies(session_factory: sessionmaker[Session]) -> None:
    result = report(session_factory)
    assert result.ok and result.checked == 0 and result.head_seq is None


def test_database_refuses_update_and_delete(session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 2)
    with pytest.raises(DBAPIError, match="append-only"), session_factory() as session, session.begin():
        session.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1"))
    with pytest.raises(DBAPIError, match="append-only"), session_factory() as session, session.begin():
        session.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    with session_factory() as session:
        assert session.scalar(select(AuditEvent.actor).where(AuditEvent.seq == 1)) == "alice@example.org"
    assert count(session_factory, AuditEvent) == 2
    assert report(session_factory).ok


def test_tampered_row_is_named(engine: Engine, session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 6)
    drop_triggers(engine)
    with engine.begin() as conn:
        conn.execute(text("""UPDATE audit_events SET details = '{"i": 99, "f": 0.1}' WHERE seq = 4"""))
    result = report(session_factory)
    assert not result.ok
    assert (result.broken_seq, result.broken_id) == (4, event_id(session_factory, 4))
    assert result.checked == 3 and result.head_seq == 3
    assert "altered" in (result.problem or "")
    assert result.message.startswith(f"audit chain broken at event #4 ({result.broken_id})")


def test_rehashed_tampering_breaks_the_next_link(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """An attacker who also recomputes the altered row's hash is caught at the following event."""
    append(session_factory, 4)
    drop_triggers(engine)
    with session_factory() as session:
        victim = session.scalars(select(AuditEvent).where(AuditEvent.seq == 2)).one()
        fields = {**audit.event_fields(victim), "actor": "mallory@example.org"}
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET actor = :a, hash = :h WHERE seq = 2"),
            {"a": "mallory@example.org", "h": audit.compute_hash(fields)},
        )
    result = report(session_factory)
    assert (result.ok, result.broken_seq) == (False, 3)
    assert "prev_hash does not match the hash of event #2" in (result.problem or "")


def test_deleted_row_in_the_middle_is_named(engine: Engine, session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 7)
    drop_triggers(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    result = report(session_factory)
    assert not result.ok
    assert (result.broken_seq, result.broken_id) == (5, event_id(session_factory, 5))
    assert result.problem == "expected event #4 here: #4 missing (deleted?)"


def test_removed_tail_is_caught_with_an_anchor(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    append(session_factory, 5)
    anchor = report(session_factory).head_hash
    drop_triggers(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 5"))
    assert report(session_factory).ok  # a truncated chain is still a valid chain...
    result = report(session_factory, anchor_hash=anchor)
    assert not result.ok and result.broken_seq == 5  # ...but not one that reaches the recorded head
    assert "events after #4 are missing" in (result.problem or "")


def test_rollback_leaves_no_event(session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 1)
    with pytest.raises(RuntimeError), unit_of_work(session_factory) as session:
        audit.record(session, action=APPENDED, actor="alice@example.org")
        raise RuntimeError("the change this event describes failed")
    assert count(session_factory, AuditEvent) == 1
    append(session_factory, 1)
    assert report(session_factory).ok and report(session_factory).head_seq == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "Consent Granted", "actor": "a@x.org"}, "is not a dotted lower-case name"),
        ({"action": "consent", "actor": "a@x.org"}, "is not a dotted lower-case name"),
        ({"action": "consent.granted", "actor": "a@x.org"}, "'consent.granted' is a plain string"),
        ({"action": AuditAction.CONSENT_GRANTED, "actor": "  "}, "has no actor"),
        (
            {"action": AuditAction.CONSENT_GRANTED, "actor": "a@x.org", "details": {"x": float("nan")}},
            "not plain JSON",
        ),
        (
            {"action": AuditAction.CONSENT_GRANTED, "actor": "a@x.org", "details": {"x": object()}},
            "not plain JSON",
        ),
    ],
)
def test_bad_events_are_refused(session_factory: sessionmaker[Session], kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message), unit_of_work(session_factory) as session:
        audit.record(session, **kwargs)
    assert count(session_factory, AuditEvent) == 0


def test_concurrent_writers_do_not_fork_the_chain(session_factory: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for _ in range(15):
                append(session_factory, 2, actor=f"{name}@example.org")
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = report(session_factory)
    assert result.ok and result.checked == 4 * 15 * 2 and result.head_seq == 120


def test_query_filters(session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 2, actor="alice@example.org", subject_id="s-1")
    append(session_factory, 1, actor="bob@example.org", job_id="j-1")
    with unit_of_work(session_factory) as session:
        audit.record(session, action=AuditAction.CONSENT_GRANTED, actor="bob@example.org", subject_id="s-1")
    with session_factory() as session:
        assert [e.seq for e in audit.query(session, subject_id="s-1")] == [1, 2, 4]
        assert [e.seq for e in audit.query(session, job_id="j-1")] == [3]
        assert [e.seq for e in audit.query(session, actor="bob@example.org")] == [3, 4]
        assert [e.seq for e in audit.query(session, action="consent.*")] == [4]
        assert [e.seq for e in audit.query(session, action=APPENDED, limit=2)] == [1, 2]
        now = utcnow()
        assert (
            len(audit.query(session, since=now - timedelta(minutes=5), until=now + timedelta(minutes=5))) == 4
        )
        assert audit.query(session, since=now + timedelta(minutes=5)) == []
        with pytest.raises(ValidationFailed, match="is not after since"):
            audit.query(session, since=now, until=now - timedelta(seconds=1))


def test_export_jsonl_and_csv_carry_the_chain_head(session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 3, subject_id="s-1")
    append(session_factory, 1)
    head = report(session_factory)
    with session_factory() as session:
        out = io.StringIO()
        summary = audit.export(session, out, fmt="jsonl", flt=audit.AuditFilter(subject_id="s-1"))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert summary == audit.ExportSummary(3, head.head_seq, head.head_hash)
    assert [line["record"] for line in lines] == ["event"] * 3 + ["chain_head"]
    assert lines[-1]["seq"] == 4 and lines[-1]["hash"] == head.head_hash and lines[-1]["count"] == 3
    # Exported events re-hash to their stored hashes: an export can be verified away from the database.
    for line in lines[:-1]:
        assert audit.compute_hash(line) == line["hash"]
    with session_factory() as session:
        out = io.StringIO()
        audit.export(session, out, fmt="csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["record"] for row in rows] == ["event"] * 4 + ["chain_head"]
    assert rows[0]["seq"] == "1" and json.loads(rows[0]["details"]) == {"i": 0, "f": 0.1}
    assert rows[-1]["hash"] == head.head_hash and rows[-1]["count"] == "4"
    with session_factory() as session, pytest.raises(ValidationFailed, match="unknown export format 'xml'"):
        audit.export(session, io.StringIO(), fmt="xml")  # type: ignore[arg-type]


def test_refusal_is_audited_after_rollback(session_factory: sessionmaker[Session]) -> None:
    from governance.errors import GovernanceError, Refusal

    with pytest.raises(GovernanceError, match="no"), unit_of_work(session_factory) as session:
        audit.record(session, action=APPENDED, actor="alice@example.org")
        raise GovernanceError(
            "no", refusal=Refusal(action=AuditAction.REVIEW_REFUSED, actor="alice@example.org")
        )
    assert audit_actions(session_factory) == [AuditAction.REVIEW_REFUSED]
    assert report(session_factory).ok


def test_fast_path_hash_input_is_the_canonical_serialisation(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        audit.record(
            session,
            action=APPENDED,
            actor="zoë@example.org",
            subject_id="s",
            details={"b": [1, 2.5, None, True], "a": {"ü": '"quoted"\n', "z": -0.0}},
        )
        audit.record(
            session,
            action=APPENDED,
            actor="system:x",
            job_id="j",
            resource_type="job",
            resource_id="r",
        )
    with session_factory() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        texts = (
            session.execute(text("SELECT CAST(details AS TEXT) FROM audit_events ORDER BY seq"))
            .scalars()
            .all()
        )
    for event, details_text in zip(events, texts, strict=True):
        fields = audit.event_fields(event)
        row = (
            event.seq,
            event.id,
            None,
            event.actor,
            event.action,
            event.subject_id,
            event.job_id,
            event.resource_type,
            event.resource_id,
            details_text,
            event.prev_hash,
            event.hash,
        )
        expected = audit.canonical_json({k: fields[k] for k in audit.HASHED_FIELDS})
        assert audit.stored_hash_input(row, fields["occurred_at"]) == expected
    assert report(session_factory).ok


def test_equivalent_but_non_canonical_details_still_verify(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """Hashes are over the canonical form, not over bytes: re-spacing the stored JSON is not an alteration."""
    append(session_factory, 2)
    drop_triggers(engine)
    with engine.begin() as conn:
        conn.execute(text("""UPDATE audit_events SET details = '{ "i" : 1, "f" : 0.1 }' WHERE seq = 2"""))
    assert report(session_factory).ok
    with engine.begin() as conn:
        conn.execute(text("""UPDATE audit_events SET details = '{ "i" : 1, "f" : 0.2 }' WHERE seq = 2"""))
    assert report(session_factory).broken_seq == 2


def test_savepoint_rollback_does_not_fork_the_chain(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        audit.record(session, action=OUTER, actor="a@x.org")
        with pytest.raises(RuntimeError), session.begin_nested():
            audit.record(session, action=INNER, actor="a@x.org")
            raise RuntimeError("inner work failed")
        audit.record(session, action=OUTER, actor="a@x.org")
        audit.record(session, action=OUTER, actor="a@x.org")
    assert audit_actions(session_factory) == [OUTER] * 3
    assert report(session_factory).ok


def _export_lines(sf: sessionmaker[Session], flt: audit.AuditFilter | None = None) -> list[str]:
    with sf() as session:
        out = io.StringIO()
        audit.export(session, out, fmt="jsonl", flt=flt)
    return out.getvalue().splitlines()


def test_exports_verify_away_from_the_database(session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 4, subject_id="s-1")
    append(session_factory, 2)
    lines = _export_lines(session_factory)
    result = audit.verify_export(lines)
    assert (result.ok, result.checked, result.head_seq, result.problem) == (True, 6, 6, None)
    assert result.head_hash == report(session_factory).head_hash
    # A removed line, a changed event, a cut-off file: each is named.
    dropped = lines[:2] + lines[3:-1] + [lines[-1].replace('"count":6', '"count":5')]
    assert audit.verify_export(dropped).problem == "does not follow event #2 (missing or reordered lines?)"
    changed = [lines[0].replace('"i":0', '"i":7')] + lines[1:]
    assert (audit.verify_export(changed).ok, audit.verify_export(changed).broken_seq) == (False, 1)
    assert audit.verify_export(lines[:-1]).problem == "no chain_head record: the export is incomplete"
    filtered = audit.verify_export(_export_lines(session_factory, audit.AuditFilter(subject_id="s-1")))
    assert filtered.ok and filtered.checked == 4 and "filtered export" in (filtered.problem or "")


def test_garbage_written_into_a_row_is_reported_not_crashed_on(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    append(session_factory, 3)
    drop_triggers(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("UPDATE audit_events SET occurred_at = 'yesterday' WHERE seq = 2"))
        else:
            conn.execute(
                text("UPDATE audit_events SET occurred_at = occurred_at - interval '1 second' WHERE seq = 2")
            )
    result = report(session_factory)
    assert (result.ok, result.broken_seq, result.problem) == (
        False,
        2,
        "contents do not match the stored hash (altered?)",
    )
