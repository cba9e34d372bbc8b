"""`likeness audit verify | checkpoint | prove | export --bundle | verify-export` against a real S3 audit bucket."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner, Result

from governance.audit import record as audit
from governance.audit.note import NoteVerifier, open_checkpoint
from governance.audit.tree import verify_inclusion
from governance.database import make_engine, make_session_factory
from governance.schema import AuditEvent, Consent
from tests.console.test_governance_cli import app, evidence, grant_args, last_actions, setup_people
from tests.fixtures.storage import S3ServerHandle, unique_prefix
from tests.governance.test_audit import drop_triggers

pytestmark = pytest.mark.s3
Run = Callable[..., Result]


def make_cli(db_url: str, tmp_path: Path, s3: S3ServerHandle | None, prefix: str) -> Run:
    runner = CliRunner()
    env = {
        "LIKENESS_DATABASE_URL": db_url,
        "LIKENESS_VAR_DIR": str(tmp_path / "var"),
        "LIKENESS_ACTOR": None,
        "LIKENESS_S3_ENDPOINT": s3.endpoint if s3 else "127.0.0.1:9",
        "LIKENESS_S3_ACCESS_KEY": s3.access_key if s3 else "x",
        "LIKENESS_S3_SECRET_KEY": s3.secret_key if s3 else "x" * 16,
        "LIKENESS_S3_BUCKET_PREFIX": prefix,
        "LIKENESS_AUDIT_ORIGIN": "test.example/audit",
        "LIKENESS_AUDIT_RETENTION_DAYS": "1",
    }

    def invoke(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(app, list(args), env=env)
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code == 1, result.output
            assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
        return result

    return invoke


def events(db_url: str) -> list[AuditEvent]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    finally:
        engine.dispose()


def test_checkpoint_prove_bundle_and_verify(db_url: str, s3_server: S3ServerHandle, tmp_path: Path) -> None:
    cli = make_cli(db_url, tmp_path, s3_server, unique_prefix())
    setup_people(cli)
    path, sha = evidence(tmp_path)
    cli(*grant_args(path, sha))  # the consent change writes a checkpoint (5 events) on its way out
    verified = cli("audit", "verify", "--actor", "aud@example.org").output
    assert verified.startswith("audit log intact: 5 events, head #5 ") and "1 checkpoint(s) match" in verified
    assert last_actions(db_url, 1) == ["audit.verified"]
    written = cli("audit", "checkpoint", "--actor", "aud@example.org").output
    assert written.startswith("checkpoint written: checkpoints/00000000000000000006.txt, 6 events, root ")
    assert "already stored" in cli("audit", "checkpoint", "--actor", "aud@example.org").output
    # An inclusion proof of the consent event, checked here with nothing but its own output.
    granted = next(e for e in events(db_url) if e.action == "consent.granted")
    proof = json.loads(cli("audit", "prove", granted.id, "--actor", "aud@example.org").output)
    verifier = NoteVerifier.parse(proof["verifier_key"])
    checkpoint = open_checkpoint(verifier, proof["checkpoint"])
    assert (proof["seq"], proof["tree_size"], checkpoint.size) == (granted.seq, 6, 6)
    b64 = base64.b64decode
    verify_inclusion(
        b64(proof["leaf_hash"]),
        proof["leaf_index"],
        proof["tree_size"],
        [b64(p) for p in proof["inclusion_path"]],
        checkpoint.root,
    )
    assert (
        cli("audit", "prove", "nope", "--actor", "aud@example.org", ok=False).output
        == "error: no audit event nope\n"
    )
    # A bundle, checked with no database (the URL points nowhere) and no storage.
    bundle = tmp_path / "bundle.jsonl"
    assert (
        "and 2 checkpoint(s) written to"
        in cli("audit", "export", "--bundle", "-o", str(bundle), "--actor", "aud@example.org").output
    )
    offline = make_cli(f"sqlite:///{tmp_path / 'absent' / 'none.db'}", tmp_path / "elsewhere", None, "none")
    result = offline("audit", "verify-export", str(bundle), "--key", verifier.key_string()).output
    assert (
        result.startswith("bundle intact: audit log intact: 6 events") and "2 checkpoint(s) match" in result
    )
    forged = tmp_path / "forged.jsonl"
    forged.write_text(
        bundle.read_text().replace('"actor":"comp@example.org"', '"actor":"eve@example.org"', 1)
    )
    assert offline("audit", "verify-export", str(forged), ok=False).output.startswith(
        f"error: bundle {forged} fails: "
    )
    assert not (tmp_path / "absent").exists()


def test_verify_names_a_rewritten_history(db_url: str, s3_server: S3ServerHandle, tmp_path: Path) -> None:
    cli = make_cli(db_url, tmp_path, s3_server, unique_prefix())
    setup_people(cli)
    path, sha = evidence(tmp_path)
    cli(*grant_args(path, sha))  # checkpoint at 5
    engine = make_engine(db_url)
    drop_triggers(engine)
    prev, stored = audit.GENESIS_HASH, events(db_url)
    with engine.begin() as conn:
        for event in stored:
            fields = audit.event_fields(event)
            if event.action == "consent.granted":
                fields["actor"] = "someone@else.org"
            fields["prev_hash"] = prev
            fields["hash"] = audit.compute_hash(fields)
            conn.execute(
                text("UPDATE audit_events SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s"),
                {"a": fields["actor"], "p": prev, "h": fields["hash"], "s": event.seq},
            )
            prev = fields["hash"]
    engine.dispose()
    assert cli("audit", "verify", "--chain-only", "--actor", "aud@example.org").output.startswith(
        "audit chain intact"
    )
    result = cli("audit", "verify", "--actor", "aud@example.org", ok=False).output
    assert result.startswith(
        "error: audit log disagrees with checkpoint checkpoints/00000000000000000005.txt@"
    )
    assert result.endswith(
        "the tree over events #1..#5 has another root than the signed one: events #1..#5 are "
        "not what was signed (history rewritten)\n"
    )
    assert last_actions(db_url, 1) == ["audit.verify_failed"]


def test_storage_down_does_not_block_a_consent_change(
    db_url: str, s3_server: S3ServerHandle, tmp_path: Path
) -> None:
    up = make_cli(
        db_url, tmp_path, s3_server, unique_prefix()
    )  # the grant keeps its evidence in object storage
    cli = make_cli(db_url, tmp_path, None, "down")
    setup_people(up)
    path, sha = evidence(tmp_path)
    granted = up(*grant_args(path, sha)).output
    consent_id = granted.split()[1]
    assert cli(
        "consent", "revoke", consent_id, "--reason", "withdrawn", "--actor", "comp@example.org"
    ).output == (f"consent {consent_id} (version 1) revoked; 0 publication(s) taken down, 0 queued\n")
    assert last_actions(db_url, 1) == ["consent.revoked"]
    engine = make_engine(db_url)
    with make_session_factory(engine)() as session:
        assert session.get(Consent, consent_id).revoked_at is not None  # type: ignore[union-attr]
    engine.dispose()
    failed = cli("audit", "checkpoint", "--actor", "aud@example.org", ok=False).output
    assert failed.startswith("error: object storage at 127.0.0.1:9 unreachable during ")
    assert cli("audit", "verify", "--actor", "aud@example.org", ok=False).output.startswith(
        "error: object storage at 127.0.0.1:9 unreachable during list checkpoints"
    )
