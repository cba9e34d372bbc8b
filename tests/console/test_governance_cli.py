"""The governance CLI end to end, in-process: exit codes, one-line errors, and the state left behind."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select, text
from typer.testing import CliRunner, Result

from console.cli import audit as audit_cmd
from console.cli import consent as consent_cmd
from console.cli import db as db_cmd
from console.cli import subject as subject_cmd
from console.cli import user as user_cmd
from governance.database import make_engine, make_session_factory
from governance.migrate import head_revision
from governance.schema import AuditEvent, Consent, User
from tests.console.argv import consent_grant
from tests.fixtures.storage import S3ServerHandle

# The governance groups, mounted as console/cli/app.py mounts them (without the other packages' groups).
app = typer.Typer()
for name, module in {
    "db": db_cmd,
    "user": user_cmd,
    "subject": subject_cmd,
    "consent": consent_cmd,
    "audit": audit_cmd,
}.items():
    app.add_typer(module.app, name=name)

Run = Callable[..., Result]


@pytest.fixture
def s3_env(s3_server: S3ServerHandle) -> dict[str, str]:
    """The session's real S3 server, with buckets of this test's own (consent evidence is kept there)."""
    return s3_server.env()


def evidence_objects(s3_server: S3ServerHandle, env: dict[str, str]) -> list[str]:
    """Every object under evidence/ in the test's inputs bucket."""
    store = s3_server.store(bucket_prefix=env["LIKENESS_S3_BUCKET_PREFIX"])
    name = store.bucket_name("inputs")
    if not store.client.bucket_exists(name):
        return []
    return [o.object_name for o in store.client.list_objects(name, prefix="evidence/", recursive=True)]


@pytest.fixture
def run(tmp_path: Path, s3_env: dict[str, str]) -> Callable[[str], Run]:
    def bind(url: str) -> Run:
        runner = CliRunner()
        env = {
            "LIKENESS_DATABASE_URL": url,
            "LIKENESS_VAR_DIR": str(tmp_path / "var"),
            "LIKENESS_ACTOR": None,
            **s3_env,
        }

        def invoke(*args: str, ok: bool = True, stdin: str | None = None) -> Result:
            result = runner.invoke(app, list(args), env=env, input=stdin)
            if ok:
                assert result.exit_code == 0, result.output
            else:
                assert result.exit_code == 1, result.output
                assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
            return result

        return invoke

    return bind


def rows(url: str, model: type) -> int:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


def last_actions(url: str, n: int) -> list[str]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return list(
                reversed(
                    session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(n)).all()
                )
            )
    finally:
        engine.dispose()


def setup_people(cli: Run) -> None:
    cli("user", "add", "admin@example.org", "--role", "admin")
    cli("user", "add", "comp@example.org", "--role", "compliance", "--actor", "admin@example.org")
    cli("user", "add", "aud@example.org", "--role", "auditor", "--actor", "admin@example.org")
    cli("subject", "add", "--reference", "S-1", "--name", "Ada", "--actor", "comp@example.org")


def evidence(tmp_path: Path, content: bytes = b"signed consent form") -> tuple[Path, str]:
    path = tmp_path / "form.pdf"
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def grant_args(path: Path, sha: str, *extra: str) -> list[str]:
    return consent_grant(path, sha, "--until", "2099-01-01", "--actor", "comp@example.org", *extra)


def test_commands_refuse_an_unmigrated_database(run: Callable[[str], Run], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    cli = run(url)
    head = head_revision()  # each issue's migration moves the head (0016: the model registry)
    result = cli("user", "add", "admin@example.org", "--role", "admin", ok=False)
    assert (
        result.output == f"error: database is at revision none, expected {head}: run `likeness db upgrade`\n"
    )
    assert f"database at revision {head}" in cli("db", "upgrade").output
    assert "unchanged" in cli("db", "upgrade").output
    assert f"database at revision {head}" in cli("db", "current").output
    assert last_actions(url, 5) == ["db.upgraded"]


def test_users_bootstrap_and_role_checks(run: Callable[[str], Run], db_url: str) -> None:
    url = db_url
    cli = run(url)
    assert cli("user", "add", "ops@example.org", "--role", "operator", ok=False).output == (
        "error: the first user must hold the admin role (--role admin)\n"
    )
    assert rows(url, User) == 0
    cli(
        "user", "add", "admin@example.org", "--role", "admin", "--password-stdin", stdin="a long password 1\n"
    )
    assert cli("user", "add", "x@example.org", "--role", "operator", ok=False).output == (
        "error: --actor is required (an admin's email)\n"
    )
    cli("user", "add", "ops@example.org", "--role", "operator", "--actor", "admin@example.org")
    before = rows(url, AuditEvent)
    result = cli("user", "add", "y@example.org", "--role", "admin", "--actor", "ops@example.org", ok=False)
    assert result.output == "error: user ops@example.org lacks role admin for user.create\n"
    assert rows(url, User) == 2
    assert rows(url, AuditEvent) == before + 1 and last_actions(url, 1) == ["access.denied"]
    assert cli(
        "user", "add", "z@example.org", "--role", "wizard", "--actor", "admin@example.org", ok=False
    ).output == ("error: unknown role 'wizard' (allowed: compliance, operator, reviewer, auditor, admin)\n")
    assert (
        "error: user ghost@example.org not found"
        in cli("user", "list", "--actor", "ghost@example.org", ok=False).output
    )
    listing = cli("user", "list", "--actor", "admin@example.org").output
    assert "ops@example.org" in listing and "operator" in listing
    cli(
        "user",
        "roles",
        "ops@example.org",
        "--role",
        "operator",
        "--role",
        "reviewer",
        "--actor",
        "admin@example.org",
    )
    refused = cli(
        "user",
        "roles",
        "admin@example.org",
        "--role",
        "admin",
        "--role",
        "reviewer",
        "--actor",
        "admin@example.org",
        ok=False,
    ).output
    assert refused.startswith(
        "error: roles admin and reviewer may not be held together: it would defeat four eyes"
    )
    cli("user", "disable", "ops@example.org", "--actor", "admin@example.org")
    assert (
        "already disabled"
        in cli("user", "disable", "ops@example.org", "--actor", "admin@example.org", ok=False).output
    )


def test_consent_lifecycle(
    run: Callable[[str], Run], db_url: str, tmp_path: Path, s3_server: S3ServerHandle, s3_env: dict[str, str]
) -> None:
    url = db_url
    cli = run(url)
    setup_people(cli)
    path, sha = evidence(tmp_path)
    granted = cli(*grant_args(path, sha)).output
    consent_id = granted.split()[1]
    # Kept in object storage as the console keeps it (any machine can read it), not in a local folder.
    assert evidence_objects(s3_server, s3_env) == [f"evidence/{sha}/original.pdf"]
    store = s3_server.store(bucket_prefix=s3_env["LIKENESS_S3_BUCKET_PREFIX"])
    assert f"s3://{store.bucket_name('inputs')}/evidence/{sha}/original.pdf" in granted
    copy = tmp_path / "back.pdf"
    store.get_file("inputs", f"evidence/{sha}/original.pdf", copy)
    assert copy.read_bytes() == path.read_bytes()
    assert not (tmp_path / "var" / "evidence").exists()
    amended = cli(
        "consent",
        "amend",
        consent_id,
        "--reason",
        "adds FR",
        "--territory",
        "DE",
        "--territory",
        "FR",
        "--actor",
        "comp@example.org",
    ).output
    new_id = amended.split()[1]
    assert "is version 2" in amended
    shown = cli("consent", "show", new_id, "--actor", "aud@example.org").output
    assert "superseded" in shown and "current" in shown and sha in shown
    assert cli(
        "consent",
        "verify",
        "--subject",
        "S-1",
        "--purpose",
        "advertising",
        "--channel",
        "web",
        "--territory",
        "FR",
        "--actor",
        "aud@example.org",
    ).output.startswith(f"covered by consent {new_id}")
    assert (
        "covers territory 'US'"
        in cli(
            "consent",
            "verify",
            "--subject",
            "S-1",
            "--purpose",
            "advertising",
            "--channel",
            "web",
            "--territory",
            "US",
            "--actor",
            "aud@example.org",
            ok=False,
        ).output
    )
    cli("consent", "revoke", new_id, "--reason", "withdrawn", "--actor", "comp@example.org")
    again = cli(
        "consent", "revoke", new_id, "--reason", "again", "--actor", "comp@example.org", ok=False
    ).output
    assert again.startswith(f"error: consent {new_id} was already revoked at ")
    assert (
        cli(
            "consent", "list", "--subject", "S-1", "--all-versions", "--actor", "aud@example.org"
        ).output.count("S-1")
        == 0
    )
    assert rows(url, Consent) == 2
    assert last_actions(url, 3) == ["consent.granted", "consent.amended", "consent.revoked"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--until", "2001-01-01"], "error: --until 2001-01-01T00:00:00+00:00 is in the past"),
        (
            ["--from", "2001-01-01", "--until", "2002-01-01"],
            "error: --until 2002-01-01T00:00:00+00:00 is in the past",
        ),
        (["--from", "yesterday"], "error: --from 'yesterday' is not an ISO date"),
        (["--purpose", "propaganda"], "error: unknown purpose 'propaganda'"),
        (["--territory", "XX"], "error: unknown territory 'XX'"),
    ],
)
def test_grant_refusals_leave_nothing(
    run: Callable[[str], Run],
    sqlite_db_url: str,
    tmp_path: Path,
    args: list[str],
    message: str,
    s3_server: S3ServerHandle,
    s3_env: dict[str, str],
) -> None:
    cli = run(sqlite_db_url)
    setup_people(cli)
    path, sha = evidence(tmp_path)
    before = rows(sqlite_db_url, AuditEvent)
    assert cli(*grant_args(path, sha, *args), ok=False).output.startswith(message)
    assert rows(sqlite_db_url, Consent) == 0 and rows(sqlite_db_url, AuditEvent) == before
    assert not list((tmp_path / "var").rglob("*.pdf"))
    assert evidence_objects(s3_server, s3_env) == []  # the uploaded evidence was removed again


def test_grant_refuses_missing_or_mismatched_evidence(
    run: Callable[[str], Run],
    sqlite_db_url: str,
    tmp_path: Path,
    s3_server: S3ServerHandle,
    s3_env: dict[str, str],
) -> None:
    cli = run(sqlite_db_url)
    setup_people(cli)
    path, sha = evidence(tmp_path)
    wrong = "0" * 64
    assert cli(*grant_args(path, wrong), ok=False).output == (
        f"error: evidence file {path} has sha256 {sha}, expected {wrong}\n"
    )
    assert cli(*grant_args(tmp_path / "nope.pdf", sha), ok=False).output == (
        f"error: evidence file {tmp_path / 'nope.pdf'} not found\n"
    )
    assert (
        "error: subject S-404 not found"
        in cli(*[a if a != "S-1" else "S-404" for a in grant_args(path, sha)], ok=False).output
    )
    assert rows(sqlite_db_url, Consent) == 0
    assert not list((tmp_path / "var").rglob("*.pdf"))
    assert evidence_objects(s3_server, s3_env) == []


def test_audit_verify_export_and_tampering(run: Callable[[str], Run], db_url: str, tmp_path: Path) -> None:
    cli = run(db_url)
    setup_people(cli)
    path, sha = evidence(tmp_path)
    cli(*grant_args(path, sha))
    assert cli("audit", "verify", "--chain-only", "--actor", "aud@example.org").output.startswith(
        "audit chain intact: 5 events, head #5 "
    )
    out = tmp_path / "log.jsonl"
    exported = cli("audit", "export", "--actor", "aud@example.org", "-o", str(out)).output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert (
        lines[-1]["record"] == "chain_head"
        and f"chain head #{lines[-1]['seq']} {lines[-1]['hash']}" in exported
    )
    assert cli("audit", "verify-export", str(out), "--actor", "aud@example.org").output.startswith(
        f"export intact: {len(lines) - 1} events, chain head #{lines[-1]['seq']} {lines[-1]['hash']}"
    )
    forged = tmp_path / "forged.jsonl"
    forged.write_text(out.read_text().replace("comp@example.org", "someone@example.org", 1))
    assert cli(
        "audit", "verify-export", str(forged), "--actor", "aud@example.org", ok=False
    ).output.startswith(f"error: export {forged} fails at event #")
    assert cli("audit", "export", "--actor", "aud@example.org", "-o", str(out), ok=False).output == (
        f"error: {out} exists: not overwriting an export\n"
    )
    csv_out = tmp_path / "consents.csv"
    cli(
        "audit",
        "export",
        "--actor",
        "aud@example.org",
        "-o",
        str(csv_out),
        "--format",
        "csv",
        "--action",
        "consent.*",
    )
    records = list(csv.DictReader(csv_out.open()))
    assert [r["action"] for r in records] == ["consent.granted", ""] and records[-1]["record"] == "chain_head"
    query = cli("audit", "query", "--actor", "aud@example.org", "--subject", "S-1").output
    assert "2 event(s)" in query
    # Tamper: an attacker with DDL rights drops the trigger and edits the consent event.
    engine = make_engine(db_url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_no_update_delete ON audit_events"))
        conn.execute(
            text("UPDATE audit_events SET actor = 'someone@else.org' WHERE action = 'consent.granted'")
        )
        seq, event_id = conn.execute(
            text("SELECT seq, id FROM audit_events WHERE action = 'consent.granted'")
        ).one()
    engine.dispose()
    result = cli("audit", "verify", "--chain-only", "--actor", "aud@example.org", ok=False)
    assert result.output == (
        f"error: audit chain broken at event #{seq} ({event_id}): "
        "contents do not match the stored hash (altered?)\n"
    )
    assert last_actions(db_url, 1) == ["audit.verify_failed"]


def test_grant_with_storage_down_is_one_line_and_records_nothing(
    run: Callable[[str], Run], sqlite_db_url: str, tmp_path: Path
) -> None:
    cli = run(sqlite_db_url)
    setup_people(cli)
    path, sha = evidence(tmp_path)
    runner = CliRunner()
    env = {
        "LIKENESS_DATABASE_URL": sqlite_db_url,
        "LIKENESS_VAR_DIR": str(tmp_path / "var"),
        "LIKENESS_ACTOR": None,
        "LIKENESS_S3_ENDPOINT": "127.0.0.1:1",
    }  # nothing listens there
    result = runner.invoke(app, grant_args(path, sha), env=env)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: object storage: ") and result.output.count("\n") == 1
    assert rows(sqlite_db_url, Consent) == 0
