"""Every automated check of one output video, as one function: what the render flow and `likeness check` run.

Given the portrait, the output video and the driving video, `score_output` runs the identity fidelity
check, the artifact checks, the motion checks (driving crops vs output, `pipeline.checks.motion`) and the
driver-leak check (`pipeline.checks.leak`), builds the policy's `CheckScores` and lets the policy decide. The
render flow (`flows.render.steps.evaluate_checks`) and the CLI (`likeness check`) call it with the same
settings, so a video checked by hand is judged exactly as a job's render would be.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from governance.errors import PolicyError
from governance.policy import CheckScores, Policy, PolicyDecision, ScoreVerdict
from pipeline.checks.identity import IdentityVerifier
from pipeline.errors import InputError, PipelineError

LEAK_SAMPLES = 8


@dataclass(frozen=True)
class ScoredOutput:
    """The scores, the per-check details (recorded with the check result), and the policy's decision."""

    scores: CheckScores
    details: dict[str, Any]
    decision: PolicyDecision
    verdicts: list[ScoreVerdict]


def framing_for(portrait: np.ndarray, crop: np.ndarray, mode: str) -> np.ndarray:
    """What the output should look like: the model's crop, or the even-sized whole portrait."""
    if mode == "crop":
        return crop
    height, width = portrait.shape[:2]
    return portrait[: height - height % 2, : width - width % 2]


def score_output(
    *,
    portrait: np.ndarray,
    output: Path,
    driving: Path,
    policy: Policy,
    verifier: IdentityVerifier,
    size: int,
    mode: str,
    every: int,
    detect_every: int,
    binding_distance: float,
    expected_size: tuple[int, int] | None = None,
) -> ScoredOutput:
    """Run identity, artifact, motion and leak checks on `output` and evaluate them under `policy`.

    Args:
        portrait: the whole (H, W, 3) RGB portrait (the identity reference and, in `full_frame`, the framing).
        output: the video to judge; driving: the video that drove it.
        size: the model's crop size (driving crops and the `crop` framing are made at it).
        mode: `crop` or `full_frame` (what the output is expected to show).
        every: sample every k-th frame (identity, artifacts, motion), as `Settings.fidelity_every`.
        detect_every: face tracking of the driving video, as the render's (`Settings.driving_detect_every`).
        binding_distance: the portrait-vs-reference distance already measured (likeness binding).
        expected_size: (width, height) the output must have; None: the framing's size.
    """
    from pipeline.checks.artifacts import ExpectedFormat, check_artifacts
    from pipeline.checks.leak import check_leak
    from pipeline.checks.motion import check_motion
    from pipeline.faces.landmarks import shared_detector
    from pipeline.faces.portrait import crop_driving, prepare_portrait
    from pipeline.video.reader import iter_frames, probe

    crop = prepare_portrait(portrait, size=size).crop
    framing = framing_for(portrait, crop, mode)
    width, height = expected_size or (framing.shape[1], framing.shape[0])
    driving_info = probe(driving)
    output_info = probe(output)
    # The whole portrait is the identity reference: its face is larger than in the model-size crop.
    fidelity = verifier.fidelity(portrait, iter_frames(output), every=every)
    expected = ExpectedFormat(
        width=width, height=height, fps=driving_info.fps, frame_count=driving_info.frame_count
    )
    artifacts = check_artifacts(
        framing, output, thresholds=policy.check_thresholds(), expected=expected, sample_every=every
    )
    # The model saw the tracked driving crops: the output's motion is compared with theirs.
    crops = crop_driving(
        driving,
        size=size,
        detect_every=detect_every,
        max_missing_ratio=policy.identity.missing_face_ratio.reject_above,
    )
    motion = check_motion(shared_detector(), crops, iter_frames(output), every=every)
    leak = check_leak(
        verifier,
        portrait,
        iter_frames(driving),
        driving_info.frame_count,
        iter_frames(output),
        output_info.frame_count,
        samples=LEAK_SAMPLES,
    )
    scores = CheckScores(
        binding_distance=float(binding_distance),
        **fidelity.scores(),
        **artifacts.scores(),
        **motion.scores(),
        **leak.scores(),
    )
    details = {
        "identity": fidelity.audit_details(),
        "artifacts": artifacts.audit_details(),
        "motion": motion.audit_details(),
        "leak": leak.audit_details(),
        "versions": check_versions(),
    }
    return ScoredOutput(
        scores=scores, details=details, decision=policy.evaluate(scores), verdicts=policy.verdicts(scores)
    )


def check_versions() -> dict[str, Any]:
    """What produced the scores: identity model, landmark model file and sha256, library versions."""
    import cv2
    import dlib

    from pipeline.checks.identity import MODEL
    from pipeline.faces.landmarks import shared_detector
    from pipeline.faces.weights import deepface_version

    try:
        likeness = importlib.metadata.version("likeness")
    except importlib.metadata.PackageNotFoundError:
        likeness = "unknown"
    return {
        "identity_model": MODEL,
        "landmark_model": shared_detector().model.as_dict(),
        "deepface": deepface_version(),
        "dlib": str(dlib.__version__),
        "opencv": str(cv2.__version__),
        "likeness": likeness,
    }


# What `likeness check` reports as one line: bad inputs, a bad policy, an unreadable file.
CHECK_ERRORS: tuple[type[Exception], ...] = (PipelineError, PolicyError, ValueError, OSError)
FULL_FRAME_CROP = 256  # driving crop size for whole-frame outputs (motion scores are size-normalised)


@dataclass(frozen=True)
class VideoCheck:
    """`likeness check`'s result: the scored output, the mode it was judged in, the binding if measured."""

    scored: ScoredOutput
    mode: str
    binding_measured: bool
    policy_version: str
    policy_digest: str

    def rows(self) -> list[dict[str, Any]]:
        """One row per check: name, score, verdict, bound (the binding is `skipped` without a reference)."""
        rows = []
        for verdict in self.scored.verdicts:
            row = {
                "name": verdict.name,
                "score": verdict.score,
                "verdict": verdict.verdict,
                "bound": verdict.bound,
            }
            if verdict.name == "binding_distance" and not self.binding_measured:
                row.update(score=None, verdict="skipped", bound="no --reference given")
            rows.append(row)
        return rows

    def as_dict(self) -> dict[str, Any]:
        """The JSON `likeness check --json` prints."""
        return {
            "checks": self.rows(),
            "outcome": self.scored.decision.outcome.value,
            "policy_version": self.policy_version,
            "versions": {**self.scored.details["versions"], "policy_digest": self.policy_digest},
        }


def check_video(
    output: Path,
    *,
    portrait: Path,
    driving: Path,
    reference: Path | None,
    policy_path: Path | None,
    every: int,
    detect_every: int,
    max_image_pixels: int,
) -> VideoCheck:
    """Judge any video against its portrait and driving video, as the render flow judges a render.

    The mode is read from the output's size: the (even-cropped) portrait's size is `full_frame`, a
    square is the model's `crop`; anything else is refused. Without `reference` the likeness binding
    is not measured (its row says so; the policy is evaluated with a neutral 0).

    Raises:
        one of `CHECK_ERRORS`, with a one-line message naming the input and the cause.
    """
    from governance.policy import DEFAULT_POLICY_PATH, load_policy
    from pipeline.images import load_image
    from pipeline.video.reader import probe

    for name, path in (
        ("output", output),
        ("portrait", portrait),
        ("driving", driving),
        ("reference", reference),
    ):
        if path is not None and not path.is_file():
            raise InputError(f"{name} file not found: {path}")
    policy = load_policy(policy_path or DEFAULT_POLICY_PATH)
    image = load_image(portrait, max_pixels=max_image_pixels)
    info = probe(output)
    probe(driving)
    height, width = image.shape[:2]
    if (info.width, info.height) == (width - width % 2, height - height % 2):
        mode, size = "full_frame", FULL_FRAME_CROP
    elif info.width == info.height:
        mode, size = "crop", info.width
    else:
        raise InputError(
            f"output {output} is {info.width}x{info.height}: neither the portrait's size "
            f"({width - width % 2}x{height - height % 2}) nor a square face crop"
        )
    verifier = IdentityVerifier(threshold=policy.check_thresholds().binding_max_distance)
    binding = 0.0
    if reference is not None:
        binding = verifier.compare(load_image(reference, max_pixels=max_image_pixels), image).distance
    scored = score_output(
        portrait=image,
        output=output,
        driving=driving,
        policy=policy,
        verifier=verifier,
        size=size,
        mode=mode,
        every=every,
        detect_every=detect_every,
        binding_distance=binding,
        expected_size=(info.width, info.height),
    )
    return VideoCheck(
        scored=scored,
        mode=mode,
        binding_measured=reference is not None,
        policy_version=policy.version_label,
        policy_digest=policy.digest,
    )
