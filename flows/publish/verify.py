"""`likeness verify`: what a file is, also for a re-encoded copy whose manifest is gone.

The C2PA verdict, the invisible watermark, and from them the publication, job, consent, model and
reviewer. The watermark is the primary link (it survives re-encoding); a valid manifest's publication
id and the exact sha256 are also used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance import jobs, models_registry
from governance import publications as pubs
from governance.publications import PublicationRecord
from governance.schema import Publication
from governance.uow import unit_of_work
from governance.withdrawals import due_reason
from models.digest import sha256_file
from pipeline.marks import provenance, watermark

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


@dataclass(frozen=True)
class VerifyReport:
    """What `likeness verify` says about a file."""

    path: str
    sha256: str
    c2pa_state: str
    c2pa_failures: tuple[str, ...]
    manifest_publication_id: str | None
    watermark_payload: int | None
    watermark_frames: int
    publication: PublicationRecord | None
    exact_copy: bool
    verdict: str  # published | withdrawal_pending | taken_down | unknown_watermark | not_published
    withdrawal: str | None = None  # why it is withdrawn (its consent revoked or no longer covering it)
    model: dict[str, str] | None = None  # the registered model the publication was rendered with

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.publication is not None:
            data["publication"] = {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in asdict(self.publication).items()
            }
        return data


def verify_file(path: Path, *, sessions: sessionmaker[Session], trust: bytes | None) -> VerifyReport:
    """What a file is: its C2PA verdict, its watermark, and the publication they lead to.

    The watermark is the primary link (it survives re-encoding); a valid manifest's publication id and
    the exact sha256 are also used. A file with neither is reported as not published by us.
    """
    path = Path(path)
    report = provenance.read_manifest(path, trust_anchors=trust)
    reading = watermark.read(path)
    digest = sha256_file(path)
    manifest_pub = report.generation.get("publication_id") if report.state in ("Trusted", "Valid") else None
    record: PublicationRecord | None = None
    model: dict[str, str] | None = None
    with unit_of_work(sessions) as session:
        found = None
        if reading.payload is not None:
            found = pubs.find_by_watermark(session, reading.payload)
        if found is None and manifest_pub:
            found = session.get(Publication, manifest_pub)
        if found is None:
            found = pubs.find_by_sha256(session, digest)
        withdrawal = None
        if found is not None:
            record = pubs.describe(session, found)
            job = jobs.get_job(session, found.job_id)
            withdrawal = (
                found.takedown_reason if found.taken_down_at is not None else due_reason(session, job)
            )
            model = models_registry.manifest_entry(session, record.model_sha256 or "")
    if record is not None:
        verdict = "published" if record.active else "taken_down"
        if record.active and withdrawal is not None:
            verdict = "withdrawal_pending"  # due for takedown: the storage has not confirmed it yet
    elif reading.payload is not None:
        verdict = "unknown_watermark"
    else:
        verdict = "not_published"
    return VerifyReport(
        path=str(path),
        sha256=digest,
        c2pa_state=report.state,
        c2pa_failures=report.failures,
        manifest_publication_id=manifest_pub,
        watermark_payload=reading.payload,
        watermark_frames=reading.frames_read,
        publication=record,
        exact_copy=record is not None and record.sha256 == digest,
        verdict=verdict,
        withdrawal=withdrawal,
        model=model,
    )
