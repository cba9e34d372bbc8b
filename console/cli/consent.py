"""`likeness consent`: grant, amend, show, list, revoke and verify consents (compliance records them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from console.cli.context import (
    ActorOption,
    CliError,
    acting_user,
    governance_command,
    out,
    parse_time,
    require_future,
    show_time,
    storage_errors,
)
from console.cli.errors import one_line_errors
from flows.audit.checkpoints import checkpoint_after
from flows.runtime.root import Runtime, make_store
from flows.takedown.steps import RETRY_HINT, WithdrawalReport, amend_consent, revoke_consent
from governance import consent, subjects
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


def _keep_evidence(ctx: Runtime, path: Path, expected_sha256: str) -> tuple[Path, str, bool]:
    """Check the document, then store it in object storage as the console does
    (`s3://<inputs bucket>/evidence/<sha256>/original<ext>`), so any machine can read it; returns
    (the checked local file, the key to record, whether this upload created the object)."""
    digest = consent.check_evidence(path, expected_sha256)
    key = f"evidence/{digest}/original{path.suffix.lower() or '.bin'}"
    with storage_errors():
        store = ctx.store
        existed = store.exists("inputs", key)
        stored = store.put_file("inputs", key, path, metadata={"kind": "evidence"}, expected_sha256=digest)
    return path, f"s3://{stored.bucket}/{stored.key}", not existed


def _forget_evidence(ctx: Runtime, key: str) -> None:
    """Remove evidence this command uploaded for a write that was then refused (nothing half-written)."""
    bucket, _, object_key = key.removeprefix("s3://").partition("/")
    with storage_errors():
        store = ctx.store
        if bucket == store.bucket_name("inputs"):
            store.delete("inputs", object_key)


def _versions_table(rows: list[Consent], *, title: str | None = None) -> Table:
    table = Table(
        "id", "v", "purposes", "channels", "territories", "valid from", "valid until", "status", title=title
    )
    for row in rows:
        status = "revoked" if row.revoked_at else ("superseded" if row.superseded_by_id else "current")
        table.add_row(
            row.id,
            str(row.version),
            ", ".join(row.purposes),
            ", ".join(row.channels),
            ", ".join(row.territories),
            show_time(row.valid_from),
            show_time(row.valid_until),
            status,
        )
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
    reference_photo: Annotated[
        Path | None,
        typer.Option(
            "--reference-photo",
            help="The subject's reference photo (one face, as for portraits); attached with the consent.",
        ),
    ] = None,
) -> None:
    """Record a new consent (compliance or admin); the evidence must match its SHA-256."""
    from flows.consent.references import (
        StoredUpload,
        check_reference_photo,
        discard_unreferenced,
        store_upload,
    )
    from flows.runtime.errors import USER_FACING

    with governance_command() as ctx, one_line_errors(*USER_FACING):
        start = parse_time(valid_from, "--from")
        end = parse_time(valid_until, "--until")
        require_future(end, "--until", now=utcnow())
        consent.check_validity(start or utcnow(), end, now=utcnow())  # refuse before keeping anything
        rt = ctx if reference_photo is not None else None  # only a reference photo needs its checks
        photo = check_reference_photo(rt, reference_photo) if rt is not None and reference_photo else None
        copy, key, created = _keep_evidence(ctx, evidence, evidence_sha256)
        stored: list[StoredUpload | None] = []
        try:
            if rt is not None and photo is not None:
                stored.append(
                    store_upload(rt, photo.path, photo.sha256, prefix="references", kind="reference")
                )
            with unit_of_work(ctx.sessions) as session:
                subject_id = find_subject(session, subject).id
                recorder = get_user_by_email(session, actor).id
                granted = consent.grant(
                    session,
                    subject_id=subject_id,
                    purposes=purpose,
                    channels=channel,
                    territories=territory,
                    valid_from=start or utcnow(),
                    valid_until=end,
                    evidence_path=copy,
                    evidence_sha256=evidence_sha256,
                    evidence_key=key,
                    recorded_by=recorder,
                    notes=notes,
                )
                for ref in stored:
                    if ref is not None and photo is not None:
                        subjects.add_reference(
                            session,
                            subject_id=subject_id,
                            bucket=ref.bucket,
                            object_key=ref.key,
                            sha256=photo.sha256,
                            created_by=recorder,
                        )
        except BaseException:
            if created:
                _forget_evidence(ctx, key)  # nothing half-written: the refused grant keeps no evidence copy
            if rt is not None:
                discard_unreferenced(rt, stored)
            raise
        photo_note = (
            f", reference photo stored as {stored[0].bucket}/{stored[0].key}" if stored and stored[0] else ""
        )
        out.print(f"consent {granted.id} granted (version 1), evidence kept as {key}{photo_note}")
        checkpoint_after(ctx.settings, ctx.sessions, "consent.granted")


@app.command("amend")
def amend(
    consent_id: Annotated[str, typer.Argument(help="The current version's id.")],
    reason: Annotated[str, typer.Option(help="Why it changes.")],
    actor: ActorOption,
    purpose: Annotated[list[str] | None, typer.Option("--purpose", help="New purposes (repeat).")] = None,
    channel: Annotated[list[str] | None, typer.Option("--channel", help="New channels (repeat).")] = None,
    territory: Annotated[
        list[str] | None, typer.Option("--territory", help="New territories (repeat).")
    ] = None,
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
            new = amend_consent(
                ctx.sessions,
                lambda: make_store(ctx.settings),
                consent_id=consent_id,
                actor_email=actor,
                reason=reason,
                **changes,
            )
        except BaseException:
            if created and copy is not None and not _recorded(ctx, key):
                _forget_evidence(ctx, key)
            raise
        out.print(f"consent {new.consent_id} is version {new.version} (supersedes {consent_id})")
        checkpoint_after(ctx.settings, ctx.sessions, "consent.amended")
        _report_takedowns(new.report)


def _recorded(ctx: Runtime, key: str) -> bool:
    """Whether the amendment was recorded after all (a takedown failed after it): the evidence then stays."""
    with ctx.sessions() as session:
        return session.scalars(select(Consent.id).where(Consent.evidence_key == key)).first() is not None


def _report_takedowns(report: WithdrawalReport) -> None:
    """List which publications were taken down and where; exit 1 if any takedown is still queued."""
    for line in report.lines():
        out.print(line, markup=False, highlight=False)
    if report.queued:
        raise CliError(f"{len(report.queued)} takedown(s) still queued (storage refused them); {RETRY_HINT}")


@app.command("revoke")
def revoke(
    consent_id: str,
    reason: Annotated[str, typer.Option(help="Why (kept with the consent and in the audit log).")],
    actor: ActorOption,
) -> None:
    """Revoke a consent from now on (compliance or admin) and take down every publication made under it.

    A consent is revoked once. The revocation stands even when the storage is down: the takedowns then
    stay queued (listed, exit 1) and the takedown sweep retries them until done.
    """
    with governance_command() as ctx:
        revoked = revoke_consent(
            ctx.sessions,
            lambda: make_store(ctx.settings),
            consent_id=consent_id,
            actor_email=actor,
            reason=reason,
        )
        out.print(
            f"consent {revoked.consent_id} (version {revoked.version}) revoked; "
            f"{len(revoked.report.taken_down)} publication(s) taken down, {len(revoked.report.queued)} queued"
        )
        checkpoint_after(ctx.settings, ctx.sessions, "consent.revoked")
        _report_takedowns(revoked.report)


@app.command("show")
def show(consent_id: str, actor: ActorOption) -> None:
    """Every version of one consent, with its evidence and revocation."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "consent.show")
        with ctx.sessions() as session:
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
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="Include superseded versions.")
    ] = False,
) -> None:
    """List consents (current versions unless --all-versions)."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "consent.list")
        with ctx.sessions() as session:
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
        with ctx.sessions() as session:
            found = consent.verify(
                session,
                subject_id=find_subject(session, subject).id,
                purpose=purpose,
                channel=channel,
                territory=territory,
                at=parse_time(at, "--at"),
            )
        out.print(f"covered by consent {found.id} (version {found.version}, lineage {found.lineage_id})")
