"""`likeness demo run` end to end: its own S3 server and SQLite database, the demo model, one job published
after review, one refused for lack of consent, the published file verified, the audit chain intact."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from console.cli.app import app
from flows.demo import steps as demo
from governance.audit.record import verify_chain
from governance.database import make_engine, make_session_factory
from governance.schema import AuditEvent, Consent
from pipeline.video.reader import probe

pytestmark = pytest.mark.slow


def compact(output: str) -> str:
    """The CLI's output without whitespace and box drawing, so wrapping in a narrow terminal does not matter."""
    return "".join(ch for ch in output if not ch.isspace() and ch not in "│┃╭╮╰╯─━┏┓┗┛┡┩┣┫╇╋┳┻┯┷┼┌┐└┘├┤┬┴")


def test_demo_runs_end_to_end(tmp_path: Path, prefect_api: str) -> None:
    root = tmp_path / "demo"

    result = CliRunner().invoke(  # a shorter stretch of the held-out frames: the same path, sooner
        app, ["demo", "run", "--root", str(root), "--frames", "20"], env={"COLUMNS": "250"}
    )

    assert result.exit_code == 0, result.output
    text = compact(result.output)
    assert "MCNettrainedonONEperson" in text  # says plainly what the model is
    assert "published{'c2pa':'Trusted'" in text
    assert "auditchainintact" in text
    assert "signinasadmin@demo.likenesswiththepassword" in text  # the console's way in, printed once
    published = list((root / "published").glob("*.mp4"))
    assert len(published) == 1
    assert probe(root / "inputs" / "driving.mp4").frame_count == 20 == probe(published[0]).frame_count
    engine = make_engine(f"sqlite:///{root / 'likeness.db'}")
    try:
        with make_session_factory(engine)() as session:
            assert verify_chain(session).ok
            actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
            evidence = session.execute(select(Consent.evidence_key, Consent.evidence_sha256)).one()
    finally:
        engine.dispose()
    for action in (
        "consent.granted",
        "batch.created",
        "job.refused",
        "review.approved",
        "publication.created",
        "job.published",
    ):
        assert action in actions
    # Recorded the way the console records (and serves) evidence: an s3:// key, content-addressed.
    assert evidence.evidence_key.startswith("s3://")
    assert evidence.evidence_key.endswith(f"/evidence/{evidence.evidence_sha256}/original.txt")
    assert not (root / "s3" / "server.json").exists()  # the demo's S3 server was stopped


@pytest.mark.parametrize("frames", ["0", str(len(demo.DRIVING_FRAMES) + 1)])
def test_frames_outside_the_stretch_are_refused_before_anything_is_touched(
    tmp_path: Path, frames: str
) -> None:
    root = tmp_path / "demo"
    root.mkdir()
    (root / "kept.txt").write_text("an earlier demo's state", encoding="utf-8")

    result = CliRunner().invoke(app, ["demo", "run", "--root", str(root), "--frames", frames])

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: --frames must be between 1 and 75, got {frames}"]
    assert (root / "kept.txt").read_text(encoding="utf-8") == "an earlier demo's state"  # not wiped
