"""`likeness consent`: grant, amend, show, list, revoke and verify consents (compliance records them)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from console.context import (
    ActorOption,
    CliContext,
    CliError,
    acting_user,
    governance_command,
    out,
    parse_time,
    require_future,
    show_time,
)
from governance import consent
from governance.enums import Role
from governance.schema import Consent
from governance.subjects import find_subject
from governance.types import utcnow
from governance.uow import unit_of_work
from governance.users import get_user_by_email

app = typer.Typer(help="Consents: versioned, revocable, with evidence.", no_args_is_help=True)
READERS = (Role.compliance, Role.admin, Role.auditor, Role.operator)

Purposes = Annotated[list[str], typer.Option("--purpose", help="Allowed purpose (repeat).")]
Channels = Annotated[list[str], typer.Option("--channel", help="Allowed channel (repeat).")]
Territories = Annotated[list[str], typer.Option("--territory", help="ISO 3166 code or WORLD (repeat).")]
Evidence = Annotated[Path, typer.Option("--evidence", help="The signed consent document.")]
EvidenceSha = Annotated[str, typer.Option("--evidence-sha256", help="Its SHA-256, as recorded when signed.")]


def _keep_evidence(ctx: CliContext, path: Path, expected_sha256: str) -> tuple[Path, str, bool]:
    """Check the document, then keep a content-addressed copy under var_dir/evidence; return (copy, key, new)."""
    digest = consent.check_evidence(path, expected_sha256)
    key = f"evidence/{digest}{path.suffix.lower()}"
    target = ctx.settings.var_dir / key
    if target.exists():
        return target, key, False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".partial")
    shutil.copyfile(path, partial)
    partial.replace(target)
    return target, key, True


def _versions_table(rows: list[Consent], *, title: str | None = None) -> Table:
    table = Table("id", "v", "purposes", "channels", "territories", "valid from", "valid until", "status", title=title)
    for row in rows:
        status = "revoked" if row.revoked_at else ("superseded" if row.superseded_by_id else "current")
        table.add_row(row.id, str(row.version), ", ".join(row.purposes), ", ".join(row.channels),
                      ", ".join(row.territories), show_time(row.valid_from), show_time(row.valid_until), status)  # fmt: skip
    return table


@app.command("grant")
def grant(
    subject: Annotated[str, typer.Option(help="Subject id or reference.")],
    purpose: Purposes,
    channel: Channels,
    territory: Territories,
    evidence: Evidence,
    evidence_sha256: EvidenceSha,
    actor: ActorOption,
    valid_from: Annotated[str | None, typer.Option("--from", help="Start (ISO; default now).")] = None,
    valid_until: Annotated[str | None, typer.Option("--until", help="End (ISO; default open-ended).")] = None,
    notes: Annotated[str, typer.Option(help="Free text kept with the consent.")] = "",
) -> None:
    """Record a new consent (compliance or admin); the evidence must match its SHA-256."""
    with governance_command() as ctx:
        start = parse_time(valid_from, "--from")
        end = parse_time(valid_until, "--until")
        require_future(end, "--until", now=utcnow())
        copy, key, created = _keep_evidence(ctx, evidence, evidence_sha256)
        try:
            with unit_of_work(ctx.session_factory) as session:
                granted = consent.grant(
                    session, subject_id=find_subject(session, subject).id, purposes=purpose, channels=channel,
                    territories=territory, valid_from=start or utcnow(), valid_until=end,
                    evidence_path=copy, evidence_sha256=evidence_sha256, evidence_key=key,
                    recorded_by=get_user_by_email(session, actor).id, notes=notes,
                )  # fmt: skip
        except BaseException:
            if created:
                copy.unlink(missing_ok=True)  # nothing half-written: the refused grant keeps no evidence copy
            raise
        out.print(f"consent {granted.id} granted (version 1), evidence kept as {key}")


@app.command("amend")
def amend(
    consent_id: Annotated[str, typer.Argument(help="The current version's id.")],
    reason: Annotated[str, typer.Option(help="Why it changes.")],
    actor: ActorOption,
    purpose: Annotated[list[str] | None, typer.Option("--purpose", help="New purposes (repeat).")] = None,
    channel: Annotated[list[str] | None, typer.Option("--channel", help="New channels (repeat).")] = None,
    territory: Annotated[list[str] | None, typer.Option("--territory", help="New territories (repeat).")] = None,
    valid_from: Annotated[str | None, typer.Option("--from", help="New start (ISO).")] = None,
    valid_until: Annotated[str | None, typer.Option("--until", help="New end (ISO).")] = None,
    evidence: Annotated[Path | None, typer.Option("--evidence", help="New evidence document.")] = None,
    evidence_sha256: Annotated[str | None, typer.Option("--evidence-sha256", help="Its SHA-256.")] = None,
) -> None:
    """Write the next version of a consent; the old version stays readable."""
    with governance_command() as ctx:
        changes: dict[str, object] = {}
        if purpose:
            changes["purposes"] = purpose
        if channel:
            changes["channels"] = channel
        if territory:
            changes["territories"] = territory
        if valid_from:
            changes["valid_from"] = parse_time(valid_from, "--from")
        if valid_until:
            changes["valid_until"] = parse_time(valid_until, "--until")
            require_future(changes["valid_until"], "--until", now=utcnow())  # type: ignore[arg-type]
        created, copy = False, None
        if evidence is not None or evidence_sha256 is not None:
            if evidence is None or evidence_sha256 is None:
                raise CliError("new evidence needs both --evidence and --evidence-sha256")
            copy, key, created = _keep_evidence(ctx, evidence, evidence_sha256)
            changes.update(evidence_path=copy, evidence_sha256=evidence_sha256, evidence_key=key)
        try:
            with unit_of_work(ctx.session_factory) as session:
                new = consent.amend(session, consent_id=consent_id, reason=reason,
                                    recorded_by=get_user_by_email(session, actor).id, **changes)  # type: ignore[arg-type]
        except BaseException:
            if created and copy is not None:
                copy.unlink(missing_ok=True)
            raise
        out.print(f"consent {new.id} is version {new.version} (supersedes {consent_id})")


@app.command("revoke")
def revoke(
    consent_id: str,
    reason: Annotated[str, typer.Option(help="Why (kept with the consent and in the audit log).")],
    actor: ActorOption,
) -> None:
    """Revoke a consent from now on (compliance or admin). A consent is revoked once."""
    with governance_command() as ctx, unit_of_work(ctx.session_factory) as session:
        revoked = consent.revoke(session, consent_id=consent_id, revoked_by=get_user_by_email(session, actor).id,
                                 reason=reason)  # fmt: skip
        out.print(f"consent {revoked.id} (version {revoked.version}) revoked")


@app.command("show")
def show(consent_id: str, actor: ActorOption) -> None:
    """Every version of one consent, with its evidence and revocation."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "consent.show")
        with ctx.session_factory() as session:
            versions = consent.history(session, consent_id)
        out.print(_versions_table(versions, title=f"consent lineage {versions[0].lineage_id}"))
        current = versions[-1]
        out.print(f"evidence: {current.evidence_key} sha256 {current.evidence_sha256}")
        if current.revoked_at:
            out.print(f"revoked {show_time(current.revoked_at)}: {current.revoke_reason}")


@app.command("list")
def list_consents(
    actor: ActorOption,
    subject: Annotated[str | None, typer.Option(help="Subject id or reference.")] = None,
    all_versions: Annotated[bool, typer.Option("--all-versions", help="Include superseded versions.")] = False,
) -> None:
    """List consents (current versions unless --all-versions)."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "consent.list")
        with ctx.session_factory() as session:
            subject_id = find_subject(session, subject).id if subject else None
            rows = consent.list_consents(session, subject_id=subject_id, include_superseded=all_versions)
        out.print(_versions_table(rows))


@app.command("verify")
def verify(
    subject: Annotated[str, typer.Option(help="Subject id or reference.")],
    purpose: Annotated[str, typer.Option()],
    channel: Annotated[str, typer.Option()],
    territory: Annotated[str, typer.Option()],
    actor: ActorOption,
    at: Annotated[str | None, typer.Option(help="When (ISO; default now).")] = None,
) -> None:
    """Which consent version covers this use (exit 1 with the reason when none does)."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "consent.verify")
        with ctx.session_factory() as session:
            found = consent.verify(session, subject_id=find_subject(session, subject).id, purpose=purpose,
                                   channel=channel, territory=territory, at=parse_time(at, "--at"))  # fmt: skip
        out.print(f"covered by consent {found.id} (version {found.version}, lineage {found.lineage_id})")
