"""The face stages run together in one process: detection, driving tracking and identity embedding in
several threads give exactly what they give one at a time.

dlib's detector releases the GIL and keeps scratch state in the object; sharing one between threads made
`detect_faces` report hundreds of faces (or crash the interpreter) while `IdentityVerifier.embed` ran.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.checks.identity import IdentityVerifier
from pipeline.faces.detection import detect_faces
from pipeline.faces.tracking import crop_driving
from pipeline.images import load_image

THREADS_PER_STAGE = 2
ITERATIONS = 12
TRACK_ITERATIONS = 3


@pytest.fixture(scope="module")
def portrait(portrait_path: Path) -> np.ndarray:
    return load_image(portrait_path, max_pixels=40_000_000)


def _run_together(work: list[Callable[[], None]]) -> list[BaseException]:
    """Start every callable in its own thread at the same moment; the errors they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(work))

    def runner(fn: Callable[[], None]) -> None:
        start.wait()
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(fn,)) for fn in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_detection_tracking_and_embedding_in_threads_match_a_serial_run(
    portrait: np.ndarray,
    talking_clip: Path,
    talking_frames: list[np.ndarray],
) -> None:
    # Two verifiers, as two runtimes in one process would have: they share deepface's one model cache.
    verifiers = [IdentityVerifier(), IdentityVerifier()]
    frame = talking_frames[30]

    # The serial answers.
    faces = detect_faces(portrait)
    track = crop_driving(talking_clip, size=64, max_missing_ratio=0.5).report
    embedding = verifiers[0].embed(frame)
    assert len(faces) == 1 and embedding is not None and track.boxes

    detected: list[object] = []
    tracked: list[object] = []
    embedded: list[np.ndarray | None] = []

    def detect() -> None:
        for _ in range(ITERATIONS):
            detected.append(detect_faces(portrait))

    def follow() -> None:
        for _ in range(TRACK_ITERATIONS):
            tracked.append(crop_driving(talking_clip, size=64, max_missing_ratio=0.5).report)

    def embed(verifier: IdentityVerifier) -> Callable[[], None]:
        def run() -> None:
            for _ in range(ITERATIONS):
                embedded.append(verifier.embed(frame))

        return run

    work: list[Callable[[], None]] = []
    for index in range(THREADS_PER_STAGE):
        work += [detect, follow, embed(verifiers[index % 2])]
    assert _run_together(work) == []

    assert len(detected) == THREADS_PER_STAGE * ITERATIONS
    assert all(result == faces for result in detected)
    assert len(tracked) == THREADS_PER_STAGE * TRACK_ITERATIONS
    assert all(result == track for result in tracked)
    assert len(embedded) == THREADS_PER_STAGE * ITERATIONS
    assert all(result is not None and np.array_equal(result, embedding) for result in embedded)


def test_each_thread_gets_its_own_detector(portrait: np.ndarray) -> None:
    from pipeline.faces import detection as face_detection

    seen: list[object] = []  # the objects themselves, so neither is freed (and its id reused) meanwhile

    def record() -> None:
        detect_faces(portrait)
        seen.append(face_detection._detector("dlib"))

    assert _run_together([record, record]) == []
    assert len(seen) == 2 and seen[0] is not seen[1]
