"""Face refusals are clean: each bad portrait or driving video ends its job `refused`, audited with what was
measured, without a traceback, with its workspace removed, while the rest of the batch goes on.

The real `likeness batch run` (Typer's runner, in process) on one batch holding a good job and one job per
kind of bad face; real SQLite, S3 server, dlib, ffmpeg, the tiny MCNet and Prefect's test API. Also: the
process-wide dlib lock (concurrent dlib calls crashed the process with SIGSEGV/SIGABRT) is checked in a
child process, so a crash shows as its exit status instead of killing the test run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from console.cli.app import app
from governance.enums import JobState
from governance.schema import AuditEvent
from governance.uow import unit_of_work
from tests.fixtures.media import BadMedia
from tests.flows.conftest import FlowWorld, cli_env, ffmpeg

ROOT = Path(__file__).resolve().parents[2]


def refusal_details(world: FlowWorld, job_id: str) -> dict[str, Any]:
    with unit_of_work(world.sessions) as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.job_id == job_id, AuditEvent.action == "job.refused")
        ).one()
        return dict(event.details)


@pytest.mark.slow
def test_each_face_problem_refuses_its_job_and_the_batch_goes_on(
    flow_world: FlowWorld, bad_media: BadMedia
) -> None:
    world = flow_world
    inputs = world.root / "inputs"
    portraits = {}
    for name in ("no_face_image", "two_faces_image", "cut_face_image", "small_face_image"):
        source = getattr(bad_media, name)
        portraits[name] = shutil.copy(source, inputs / source.name)
    faceless = inputs / "faceless.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=192x192:rate=25",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(faceless),
    )
    cases = {  # subject: (job fields, words in the reason, what the audit record must say)
        "S-GOOD": ({}, None, None),
        "S-NOFACE": (
            {"portrait": portraits["no_face_image"]},
            "no face found in the portrait",
            {"faces_found": 0},
        ),
        "S-TWO": (
            {"portrait": portraits["two_faces_image"]},
            "the portrait shows 2 faces; exactly one is required",
            {"faces_found": 2},
        ),
        "S-CUT": ({"portrait": portraits["cut_face_image"]}, "touches the image border", {"faces_found": 1}),
        "S-SMALL": (
            {"portrait": portraits["small_face_image"]},
            "at least 64 px is required",
            {"faces_found": 1, "min_face_px": 64},
        ),
        "S-OTHER": ({"portrait": world.media.stranger}, "does not match", {"checked": "binding"}),
        "S-DRIVING": (
            {"driving": faceless},
            "sampled frames of driving video",
            {"checked": "driving video", "faces_found": 0},
        ),
    }
    for subject in cases:
        world.add_subject(subject)
        world.grant(subject)
    batch_id = world.submit([{"subject": subject, **fields} for subject, (fields, _, _) in cases.items()])
    job_ids = dict(zip(cases, world.job_ids(batch_id), strict=True))

    result = CliRunner().invoke(app, ["batch", "run", batch_id], env=cli_env(world))

    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert world.state(job_ids["S-GOOD"]) == JobState.published
    for subject, (_, words, recorded) in cases.items():
        if words is None:
            continue
        job = world.job(job_ids[subject])
        assert job.state == JobState.refused, (subject, job.state, job.last_error)
        assert words in (job.last_error or ""), (subject, job.last_error)
        assert "\n" not in (job.last_error or "")
        details = refusal_details(world, job_ids[subject])
        for key, value in (recorded or {}).items():
            assert details.get(key) == value, (subject, details)
        assert job.output_key is None
    assert refusal_details(world, job_ids["S-SMALL"])["face_px"] < 64
    other = refusal_details(world, job_ids["S-OTHER"])
    assert other["distance"] > other["threshold"]
    work = world.rt.settings.var_dir / "work"
    assert not work.exists() or list(work.iterdir()) == []
    # The report names each refusal on one line of its own row.
    for subject, (_, words, _) in cases.items():
        if words is not None:
            assert job_ids[subject][:8] in result.stdout


RACE = """
import sys, threading
import numpy as np
from PIL import Image
from pipeline.faces.detection import detect_faces
from pipeline.checks.identity import IdentityVerifier
image = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
verifier = IdentityVerifier()
def work(i):
    for _ in range(6):
        detect_faces(image) if i % 2 else verifier.embed(image)
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("ok")
"""


@pytest.mark.slow
def test_concurrent_face_detection_and_embedding_do_not_crash_the_process(
    other_person_portrait: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RACE, str(other_person_portrait)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "ok"
