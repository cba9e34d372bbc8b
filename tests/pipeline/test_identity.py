"""Identity with deepface's Dlib model on real faces, fully offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.checks.identity import NO_FACE_DISTANCE, IdentityVerifier, worst_mean
from pipeline.faces.portrait import prepare_portrait
from pipeline.images import load_image

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 40_000_000


@pytest.fixture(scope="module")
def verifier() -> IdentityVerifier:
    return IdentityVerifier(threshold=0.055)


def test_same_person_within_and_strangers_beyond_the_threshold(
    verifier: IdentityVerifier,
    talking_frames: list[np.ndarray],
    other_person_portrait: Path,
    astronaut_portrait: Path,
) -> None:
    same = verifier.compare(talking_frames[0], talking_frames[40])
    assert same.verified and same.distance < 0.04
    hopper = load_image(other_person_portrait, max_pixels=LIMIT)
    astronaut = load_image(astronaut_portrait, max_pixels=LIMIT)
    for stranger in (hopper, astronaut):
        result = verifier.compare(talking_frames[0], stranger)
        assert not result.verified and result.distance > 0.1
    details = same.audit_details()
    assert details == {
        "distance": pytest.approx(same.distance, abs=1e-6),
        "verified": True,
        "model": "Dlib",
        "detector": "dlib",
        "metric": "cosine",
        "threshold": 0.055,
        "deepface_version": "0.0.103",
    }


def test_compare_refuses_an_image_without_a_face(
    verifier: IdentityVerifier, talking_frames: list[np.ndarray]
) -> None:
    from pipeline.faces.portrait import NoFaceError

    with pytest.raises(NoFaceError, match="no face found in the second image"):
        verifier.compare(talking_frames[0], np.full((200, 200, 3), 128, np.uint8))


def test_fidelity_samples_every_kth_frame(
    verifier: IdentityVerifier, talking_frames: list[np.ndarray], portrait_path: Path
) -> None:
    source = prepare_portrait(load_image(portrait_path, max_pixels=LIMIT), size=256).crop
    frames = list(talking_frames[:20])
    frames[10] = np.full_like(frames[10], 90)  # a frame the face has vanished from
    result = verifier.fidelity(source, iter(frames), every=5)
    assert result.frame_indices == [0, 5, 10, 15]
    assert result.distances[2] is None and result.missing_frames == [10]
    assert result.missing_face_ratio == pytest.approx(0.25)
    found = [d for d in result.distances if d is not None]
    assert all(d < 0.055 for d in found)
    assert result.mean_distance == pytest.approx(np.mean(found))
    assert result.worst5_distance == pytest.approx(max(found))
    assert set(result.scores()) == {
        "fidelity_mean_distance",
        "fidelity_worst5_distance",
        "missing_face_ratio",
    }
    assert result.audit_details()["threshold"] == 0.055 and result.audit_details()["sampled_frames"] == 4


def test_fidelity_of_a_faceless_output_fails_closed(verifier: IdentityVerifier, portrait_path: Path) -> None:
    source = load_image(portrait_path, max_pixels=LIMIT)
    result = verifier.fidelity(source, [np.full((64, 64, 3), 30, np.uint8)] * 4, every=2)
    assert result.missing_face_ratio == 1.0
    assert result.mean_distance == result.worst5_distance == NO_FACE_DISTANCE


def test_worst_five_percent() -> None:
    values = [float(v) for v in range(100)]
    assert worst_mean(values) == pytest.approx(np.mean([95, 96, 97, 98, 99]))
    assert worst_mean([0.1, 0.3]) == pytest.approx(0.3)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        IdentityVerifier(threshold=0)
    with pytest.raises(ValueError, match="detector"):
        IdentityVerifier(detector="retinaface")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metric"):
        IdentityVerifier(metric="manhattan")  # type: ignore[arg-type]


OFFLINE_SCRIPT = r"""
import json, socket, sys
attempts = []
def refuse(self, address, *args, **kwargs):
    attempts.append(str(address))
    raise OSError("network blocked by the test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = lambda address, *a, **k: refuse(None, address)
from pathlib import Path
from pipeline.faces.weights import install_weights
home = install_weights(Path(sys.argv[1]))
from pipeline.images import load_image
from pipeline.checks.identity import IdentityVerifier
from pipeline.faces.portrait import prepare_portrait
a = load_image(sys.argv[2], max_pixels=10**8)
b = load_image(sys.argv[3], max_pixels=10**8)
crop = prepare_portrait(a, size=128)
for detector in ("dlib", "opencv"):
    result = IdentityVerifier(0.055, detector=detector).compare(a, b)
weights = sorted(p.name for p in (home / ".deepface" / "weights").iterdir())
print(json.dumps({"attempts": attempts, "distance": result.distance, "weights": weights,
                  "home": str(home), "env": __import__("os").environ["DEEPFACE_HOME"]}))
"""


def test_deepface_runs_with_the_network_blocked_and_a_fresh_home(
    tmp_path: Path, portrait_path: Path, other_person_portrait: Path
) -> None:
    home = tmp_path / "deepface-home"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "user-home")}
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, str(home), str(portrait_path), str(other_person_portrait)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert report["distance"] > 0.1
    assert report["weights"] == [
        "dlib_face_recognition_resnet_model_v1.dat",
        "shape_predictor_5_face_landmarks.dat",
    ]
    assert report["env"] == report["home"] == str(home.resolve())
    assert not (tmp_path / "user-home" / ".deepface").exists()  # nothing written to the user's own home


def test_the_network_block_in_the_offline_test_does_bite(tmp_path: Path) -> None:
    script = OFFLINE_SCRIPT.split("from pathlib import Path")[0] + (
        "import urllib.request\n"
        "try:\n    urllib.request.urlopen('http://127.0.0.1:9/', timeout=2)\nexcept Exception:\n    pass\n"
        "print(json.dumps(attempts))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout.strip()) != []


def test_the_deepface_home_is_fixed_once_per_process(tmp_path: Path) -> None:
    from pipeline.faces.weights import DeepfaceWeightsError, install_weights, weights_source

    home = install_weights()
    assert os.environ["DEEPFACE_HOME"] == str(home)
    assert install_weights() == home  # idempotent
    for name in ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"):
        placed = home / ".deepface" / "weights" / name
        assert placed.stat().st_size == (weights_source() / name).stat().st_size
    with pytest.raises(DeepfaceWeightsError, match="already set"):
        install_weights(tmp_path / "another-home")
