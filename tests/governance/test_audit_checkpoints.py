"""Signed checkpoints outside the database: what a hostile database administrator does is caught.

Real databases (SQLite and PostgreSQL, the `db_url` fixture), a real SeaweedFS with object lock (the
`s3_server` fixture), real Ed25519 keys. Each attack is the one the issue describes, and each report
names the event or the checkpoint that disagrees.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from flows.audit.checkpoints import (
    audit_signer,
    audit_verifier,
    checkpoint_after,
    stored_notes,
    write_checkpoint,
)
from flows.runtime.settings import Settings
from governance.audit import ledger as audit_ledger
from governance.audit import record as audit
from governance.audit.bundle import verify_bundle, write_bundle
from governance.audit.note import NoteSigner, NoteVerifier, open_checkpoint, sign_checkpoint
from governance.audit.tree import leaf_hash, root_of
from governance.database import make_engine, make_session_factory
from governance.schema import AuditEvent
from pipeline.storage.audit_store import CheckpointStore, checkpoint_key
from tests.fixtures.storage import S3ServerHandle, unique_prefix
from tests.governance.test_audit import append, drop_triggers, event_id
from tests.governance.test_audit import report as chain_report

pytestmark = pytest.mark.s3


@pytest.fixture
def settings(db_url: str, s3_server: S3ServerHandle, tmp_path: Path) -> Settings:
    return s3_server.settings(
        tmp_path / "var", db_url, audit_origin="test.example/audit", audit_retention_days=1
    )


@pytest.fixture
def store(settings: Settings) -> CheckpointStore:
    return CheckpointStore(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        bucket_prefix=settings.s3_bucket_prefix,
    )


def verify(
    settings: Settings, sf: sessionmaker[Session], verifier: NoteVerifier | None = None
) -> audit_ledger.LogReport:
    with sf() as session, session.begin():
        return audit_ledger.verify_log(session, stored_notes(settings), verifier or audit_verifier(settings))


def rewrite_history(engine: Engine, sf: sessionmaker[Session], seq: int) -> None:
    """Edit one event and recompute every later prev_hash and hash with the project's own compute_hash."""
    drop_triggers(engine)
    with sf() as session:
        events = [audit.event_fields(e) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    prev = events[seq - 2]["hash"] if seq > 1 else audit.GENESIS_HASH
    with engine.begin() as conn:
        for fields in events[seq - 1 :]:
            if fields["seq"] == seq:
                fields["details"] = {"i": 99, "f": 0.1}
            fields["prev_hash"] = prev
            fields["hash"] = audit.compute_hash(fields)
            conn.execute(
                text("UPDATE audit_events SET details = :d, prev_hash = :p, hash = :h WHERE seq = :s"),
                {
                    "d": audit.canonical_json(fields["details"]),
                    "p": fields["prev_hash"],
                    "h": fields["hash"],
                    "s": fields["seq"],
                },
            )
            prev = fields["hash"]


def test_tree_head_is_the_rfc_root_over_the_canonical_events(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    append(session_factory, 11)
    with session_factory() as session:
        events = [audit.event_fields(e) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        head = audit_ledger.tree_head(session)
        at_five = audit_ledger.tree_head(session, size=5)
        proof = audit_ledger.prove_inclusion(session, event_id=events[6]["id"], seq=7, size=11)
    leaves = [
        leaf_hash(audit.canonical_json({k: e[k] for k in audit.HASHED_FIELDS}).encode()) for e in events
    ]
    assert (head.size, head.root, head.head_hash) == (11, root_of(leaves), events[-1]["hash"])
    assert at_five.root == root_of(leaves[:5])
    assert proof.leaf == leaves[6] and proof.root == head.root and len(proof.path) == 4
    proof.verify()


def test_checkpoint_is_a_signed_note_in_the_audit_bucket(
    settings: Settings, session_factory: sessionmaker[Session], store: CheckpointStore
) -> None:
    append(session_factory, 3)
    result = write_checkpoint(settings, session_factory)
    assert result.written and result.key == checkpoint_key(3)
    lines = result.note.split("\n")
    assert lines[:3] == ["test.example/audit", "3", result.root_b64]
    assert lines[3] == "" and lines[4].startswith("\u2014 test.example/audit ")
    assert len(base64.b64decode(lines[4].split(" ")[2])) == 4 + 64  # key id + Ed25519 signature
    assert open_checkpoint(audit_verifier(settings), result.note).size == 3
    assert not write_checkpoint(settings, session_factory).written  # same tree head: not stored twice
    assert store.ensure_audit_bucket()  # object lock (SeaweedFS): compliance retention on every checkpoint
    (obj,) = store.checkpoints()
    assert obj.text == result.note
    retention = store.client.get_object_retention(store.audit_bucket, obj.key, version_id=obj.version_id)
    assert retention.mode == "COMPLIANCE"
    with pytest.raises(Exception, match="AccessDenied"):
        store.client.remove_object(store.audit_bucket, obj.key, version_id=obj.version_id)
    # The development key lives under var/, never in the database, and is reused.
    assert (settings.var_dir / "audit-signing" / "audit-ed25519.pem").exists()
    assert audit_signer(settings).verifier.key_string() == audit_verifier(settings).key_string()
    report = verify(settings, session_factory)
    assert report.ok and report.checked == 3 and report.checkpoints == 1, report.message


def test_consistent_rewrite_of_history_is_caught(
    engine: Engine, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    append(session_factory, 2)
    write_checkpoint(settings, session_factory)
    append(session_factory, 5)
    write_checkpoint(settings, session_factory)
    rewrite_history(engine, session_factory, 4)
    assert chain_report(session_factory).ok  # the chain alone is fooled...
    report = verify(settings, session_factory)  # ...the checkpoints are not
    assert not report.ok
    assert (report.checkpoint or "").startswith(checkpoint_key(7) + "@")
    assert report.message == (
        f"audit log disagrees with checkpoint {report.checkpoint}: the tree over events #1..#7 has another root "
        "than the signed one: events #3..#7 are not what was signed (history rewritten)"
    )


def test_deleted_tail_is_caught(
    engine: Engine, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    append(session_factory, 7)
    write_checkpoint(settings, session_factory)
    drop_triggers(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 6"))
    assert chain_report(session_factory).ok
    report = verify(settings, session_factory)
    assert (report.checkpoint or "").startswith(checkpoint_key(7) + "@")
    assert report.message == (
        f"audit log disagrees with checkpoint {report.checkpoint}: it covers 7 events, "
        "the log holds 5: #6..#7 missing (deleted?)"
    )


def test_edited_event_is_named(
    engine: Engine, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    append(session_factory, 4)
    write_checkpoint(settings, session_factory)
    drop_triggers(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory@example.org' WHERE seq = 2"))
    report = verify(settings, session_factory)
    assert report.message == (
        f"audit chain broken at event #2 ({event_id(session_factory, 2)}): "
        "contents do not match the stored hash (altered?)"
    )


def test_replaced_checkpoint_object_is_caught(
    settings: Settings, session_factory: sessionmaker[Session], store: CheckpointStore
) -> None:
    append(session_factory, 4)
    written = write_checkpoint(settings, session_factory)
    # A new version over the checkpoint, its root swapped for the root of a rewritten history.
    forged = written.note.replace(written.root_b64, base64.b64encode(b"\x07" * 32).decode())
    data = forged.encode()
    result = store.client.put_object(store.audit_bucket, written.key, io.BytesIO(data), len(data))
    report = verify(settings, session_factory)
    assert not report.ok
    assert report.checkpoint == f"{written.key}@{result.version_id}"
    assert report.message.endswith("the signature by key test.example/audit does not verify (altered?)")


def test_checkpoint_signed_with_another_key_is_caught(
    settings: Settings, session_factory: sessionmaker[Session], store: CheckpointStore
) -> None:
    append(session_factory, 4)
    write_checkpoint(settings, session_factory)
    append(session_factory, 1)
    mallory = NoteSigner("test.example/audit", Ed25519PrivateKey.generate())
    with session_factory() as session:
        head = audit_ledger.tree_head(session)
    store.put_checkpoint(5, sign_checkpoint(mallory, head.size, head.root), retain_days=1)
    report = verify(settings, session_factory)
    ours = audit_verifier(settings)
    assert (report.checkpoint or "").startswith(checkpoint_key(5) + "@")
    assert report.problem == (
        f"not signed by key test.example/audit ({ours.id.hex()}): "
        f"signed by test.example/audit ({mallory.verifier.id.hex()})"
    )
    # Verified with the other key instead, the genuine checkpoint is the one refused.
    assert (verify(settings, session_factory, mallory.verifier).checkpoint or "").startswith(
        checkpoint_key(4)
    )


def test_storage_down_never_blocks_and_is_retried(
    settings: Settings, session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    append(session_factory, 2)
    down = CheckpointStore(
        "127.0.0.1:9",
        access_key="x",
        secret_key="y" * 16,
        bucket_prefix="down",
        connect_timeout=0.2,
        retries=0,
    )
    with caplog.at_level("INFO", logger="flows.audit.checkpoints"):
        assert (
            checkpoint_after(settings, session_factory, "consent.revoked", store=down, delays=(0.01, 0.01))
            is None
        )
    retries = [r for r in caplog.records if "attempt" in r.getMessage() and "retrying" in r.getMessage()]
    assert len(retries) == 2
    assert "not written (3 attempt(s))" in caplog.records[-1].getMessage()
    assert "unreachable" in caplog.records[-1].getMessage()
    assert chain_report(session_factory).checked == 2  # the action's events are untouched
    # When storage is back, the next checkpoint covers the events.
    assert checkpoint_after(settings, session_factory, "batch") is not None
    assert verify(settings, session_factory).checkpoints == 1


def test_bundle_verifies_offline_and_names_what_broke(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    append(session_factory, 3)
    write_checkpoint(settings, session_factory)
    append(session_factory, 3)
    write_checkpoint(settings, session_factory)
    out = io.StringIO()
    with session_factory() as session, session.begin():
        assert (
            write_bundle(session, out, notes=stored_notes(settings), verifier=audit_verifier(settings)) == 6
        )
    lines = out.getvalue().splitlines()
    report, key = verify_bundle(lines)
    assert report.ok and report.checked == 6 and report.checkpoints == 2, report.message
    assert key is not None and key.key_string() == audit_verifier(settings).key_string()
    other = NoteSigner("test.example/audit", Ed25519PrivateKey.generate()).verifier.key_string()
    assert "is not the trusted key" in (verify_bundle(lines, trusted_key=other)[0].problem or "")
    # A consistently re-hashed event in the bundle: the chain links, the checkpoint does not match.
    events = [i for i, line in enumerate(lines) if '"record":"event"' in line]
    items = [json.loads(lines[i]) for i in events]
    prev = items[0]["prev_hash"]
    for item in items:
        if item["seq"] == 5:
            item["actor"] = "mallory@example.org"
        item["prev_hash"] = prev
        item["hash"] = audit.compute_hash(item)
        prev = item["hash"]
    forged = lines[: events[0]] + [audit.canonical_json(i) for i in items] + lines[events[-1] + 1 :]
    forged[-1] = forged[-1].replace(lines[-1].split('"hash":"')[1][:64], prev)
    bad, _ = verify_bundle(forged)
    assert (bad.checkpoint or "").startswith(checkpoint_key(6))
    assert bad.message == (
        f"audit log disagrees with checkpoint {bad.checkpoint}: the tree over events #1..#6 "
        "has another root than the signed one: events #4..#6 are not what was signed (history rewritten)"
    )
    # A line dropped from the middle.
    dropped, _ = verify_bundle(lines[: events[1]] + lines[events[1] + 1 :])
    assert dropped.broken_seq == 3 and "missing or reordered" in (dropped.problem or "")


WRITER = """
import sys
from flows.audit.checkpoints import write_checkpoint
from flows.runtime.settings import Settings
from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.database import make_engine, make_session_factory
from governance.uow import unit_of_work

settings = Settings()
sf = make_session_factory(make_engine(settings.database_url))
for i in range(int(sys.argv[1])):
    with unit_of_work(sf) as session:
        for j in range(3):
            audit.record(session, action=AuditAction.ACCESS_READ, actor=sys.argv[2], details={"i": i, "j": j})
    write_checkpoint(settings, sf)
"""


@pytest.mark.postgres
def test_two_processes_append_and_checkpoint_one_linear_log(
    postgres_db_url: str, s3_server: S3ServerHandle, tmp_path: Path
) -> None:
    """Two writer processes (and their development-key race) still give one chain and consistent checkpoints."""
    prefix = unique_prefix()
    env = {
        **os.environ,
        "LIKENESS_DATABASE_URL": postgres_db_url,
        "LIKENESS_VAR_DIR": str(tmp_path / "var"),
        **s3_server.env(bucket_prefix=prefix),
        "LIKENESS_AUDIT_ORIGIN": "test.example/audit",
        "LIKENESS_AUDIT_RETENTION_DAYS": "1",
    }
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, "12", f"w{n}@example.org"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], outputs
    settings = s3_server.settings(
        tmp_path / "var", postgres_db_url, bucket_prefix=prefix, audit_origin="test.example/audit"
    )
    engine = make_engine(postgres_db_url)
    try:
        sf = make_session_factory(engine)
        chain = chain_report(sf)
        assert chain.ok and chain.checked == 2 * 12 * 3
        notes = stored_notes(settings)
        sizes = {open_checkpoint(audit_verifier(settings), n.text).size for n in notes}
        assert max(sizes) == 72 and len(sizes) >= 12  # every checkpoint a prefix of the one log
        result = verify(settings, sf)
        assert result.ok and result.checkpoints == len(notes), result.message
    finally:
        engine.dispose()


def test_malformed_bundles_are_named(settings: Settings, session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 3)
    write_checkpoint(settings, session_factory)
    out = io.StringIO()
    with session_factory() as session, session.begin():
        write_bundle(session, out, notes=stored_notes(settings), verifier=audit_verifier(settings))
    lines = out.getvalue().splitlines()
    assert verify_bundle(lines[:-1])[0].problem == "no chain_head record: the bundle is incomplete"
    assert (
        verify_bundle(lines[1:])[0].problem == "no verifier_key record before the events: not an audit bundle"
    )
    assert verify_bundle([*lines[:3], "{}", *lines[3:]])[0].problem == "line 4 is not a bundle record"
    assert verify_bundle([*lines, lines[2]])[0].problem == "an event after the chain_head record"
    cut = verify_bundle([line for line in lines if '"seq":3,' not in line or '"record":"event"' not in line])[
        0
    ]
    assert (cut.checkpoint or "").startswith(checkpoint_key(3))
    assert cut.problem == "it covers 3 events, the log holds 2: #3 missing (deleted?)"


def test_next_tree_head_reads_only_the_new_events(session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 9)
    with session_factory() as session:
        earlier = audit_ledger.tree_head(session)
    append(session_factory, 4)
    with session_factory() as session:
        full = audit_ledger.tree_head(session)
        assert audit_ledger.tree_head(session, since=earlier) == full
        # Proof that the frontier is what is used: a bogus one gives another root...
        bogus = audit_ledger.TreeHead(
            9, earlier.root, earlier.head_hash, ((0, 8, b"\x01" * 32), (8, 1, b"\x02" * 32))
        )
        assert audit_ledger.tree_head(session, since=bogus).root != full.root
        # ...unless the head's last event no longer has the hash it had: then the whole log is read.
        moved = audit_ledger.TreeHead(9, earlier.root, "f" * 64, bogus.frontier)
        assert audit_ledger.tree_head(session, since=moved) == full
