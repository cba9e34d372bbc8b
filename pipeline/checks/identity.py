"""Identity similarity with deepface's Dlib model, fully offline.

Two uses: likeness binding (is the portrait the person on the consent's reference photo?) and output
fidelity (does the animated face stay that person, frame after frame?). Distances are cosine distances
between 128-d Dlib embeddings of detected, aligned faces; lower is more alike. The threshold is
calibrated on real photos (`docs/identity-calibration.md`) and comes from the policy. Every result
carries the model, detector, metric, threshold and deepface version that produced it.

The model is loaded once per process (deepface caches it). Every call into deepface holds the one
process-wide `pipeline.faces.detection.DEEPFACE_LOCK`, not a lock of this verifier's own: deepface's cache
is shared by every verifier in the process, and dlib's detector and network are not thread-safe (two
threads in one dlib detector crash the process or invent hundreds of faces).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from pipeline.faces.detection import DEEPFACE_LOCK, DETECTORS, Detector, NoFaceError
from pipeline.faces.weights import deepface_module, deepface_version

logger = logging.getLogger(__name__)

MODEL = "Dlib"
Metric = Literal["cosine", "euclidean_l2"]
# Calibrated on real photos of different people (docs/identity-calibration.md).
DEFAULT_THRESHOLD = 0.055
DEFAULT_EVERY = 3
# The distance recorded when no sampled frame has a face: beyond any threshold, so the check fails closed.
NO_FACE_DISTANCE = 1.0
WORST_SHARE = 0.05


class IdentityProvenance(BaseModel):
    """What produced a result, so a decision can be re-read against its own method."""

    model_config = ConfigDict(frozen=True)

    model: str
    detector: str
    metric: str
    threshold: float
    deepface_version: str


class IdentityResult(BaseModel):
    """Distance between two faces, and whether it is within the threshold (the same person)."""

    model_config = ConfigDict(frozen=True)

    distance: float
    verified: bool
    provenance: IdentityProvenance

    def audit_details(self) -> dict[str, Any]:
        """Plain data for the audit log."""
        return {
            "distance": round(self.distance, 6),
            "verified": self.verified,
            **self.provenance.model_dump(),
        }


class FidelityResult(BaseModel):
    """Source face vs every `every`-th output frame: per-frame distances, mean, worst 5%, faceless frames."""

    model_config = ConfigDict(frozen=True)

    every: int
    frame_indices: list[int]
    distances: list[float | None]  # None: no face in that frame
    mean_distance: float
    worst5_distance: float
    missing_face_ratio: float
    provenance: IdentityProvenance

    @property
    def missing_frames(self) -> list[int]:
        """Indices of sampled frames with no face."""
        return [i for i, d in zip(self.frame_indices, self.distances, strict=True) if d is None]

    def scores(self) -> dict[str, float]:
        """The identity part of the policy's `CheckScores`."""
        return {
            "fidelity_mean_distance": self.mean_distance,
            "fidelity_worst5_distance": self.worst5_distance,
            "missing_face_ratio": self.missing_face_ratio,
        }

    def audit_details(self) -> dict[str, Any]:
        """Plain data for the audit log (per-frame distances rounded)."""
        return {
            **{k: round(v, 6) for k, v in self.scores().items()},
            "every": self.every,
            "sampled_frames": len(self.frame_indices),
            "missing_frames": self.missing_frames,
            "distances": [None if d is None else round(d, 4) for d in self.distances],
            **self.provenance.model_dump(),
        }


def distance(a: np.ndarray, b: np.ndarray, metric: Metric = "cosine") -> float:
    """Cosine distance (1 - cos) or Euclidean distance of L2-normalised embeddings."""
    na, nb = a / np.linalg.norm(a), b / np.linalg.norm(b)
    if metric == "cosine":
        return float(max(0.0, 1.0 - float(np.dot(na, nb))))
    return float(np.linalg.norm(na - nb))


def worst_mean(values: list[float], share: float = WORST_SHARE) -> float:
    """Mean of the worst (largest) `share` of values, at least one value."""
    ordered = sorted(values, reverse=True)
    count = max(1, math.ceil(share * len(ordered)))
    return float(np.mean(ordered[:count]))


class IdentityVerifier:
    """Compares faces with deepface's Dlib model; build one per process and reuse it.

    Args:
        threshold: the largest distance still counted as the same person (from the policy).
        detector: `dlib` (default) or `opencv`; both run offline.
        metric: `cosine` (default; what the threshold is calibrated in) or `euclidean_l2`.
    """

    def __init__(
        self, threshold: float = DEFAULT_THRESHOLD, *, detector: Detector = "dlib", metric: Metric = "cosine"
    ) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        if metric not in ("cosine", "euclidean_l2"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean_l2', got {metric!r}")
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be a positive number, got {threshold!r}")
        self.threshold = float(threshold)
        self.detector: Detector = detector
        self.metric: Metric = metric
        self._deepface: Any = None
        self._provenance: IdentityProvenance | None = None

    @property
    def provenance(self) -> IdentityProvenance:
        """Model, detector, metric, threshold and deepface version of this verifier."""
        if self._provenance is None:
            self._provenance = IdentityProvenance(
                model=MODEL,
                detector=self.detector,
                metric=self.metric,
                threshold=self.threshold,
                deepface_version=deepface_version(),
            )
        return self._provenance

    def embed(self, image: np.ndarray) -> np.ndarray | None:
        """The 128-d embedding of the largest face in an (H, W, 3) uint8 RGB image; None when there is none."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}")
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        with DEEPFACE_LOCK:
            if self._deepface is None:
                self._deepface = deepface_module()
            try:
                faces = self._deepface.represent(
                    img_path=bgr,
                    model_name=MODEL,
                    detector_backend=self.detector,
                    enforce_detection=True,
                    align=True,
                )
            except ValueError:  # deepface's "Face could not be detected"
                return None
        best = max(faces, key=lambda f: f["facial_area"]["w"] * f["facial_area"]["h"])
        return np.asarray(best["embedding"], dtype=np.float64)

    def compare(self, a: np.ndarray, b: np.ndarray) -> IdentityResult:
        """Distance between the faces of two RGB images (the largest face of each).

        Raises:
            NoFaceError: either image shows no face.
        """
        first, second = self.embed(a), self.embed(b)
        for name, embedding in (("first", first), ("second", second)):
            if embedding is None:
                raise NoFaceError(
                    f"identity check: no face found in the {name} image (detector {self.detector})"
                )
        assert first is not None and second is not None
        value = distance(first, second, self.metric)
        return IdentityResult(distance=value, verified=value <= self.threshold, provenance=self.provenance)

    def fidelity(
        self, source: np.ndarray, frames: Iterable[np.ndarray], *, every: int = DEFAULT_EVERY
    ) -> FidelityResult:
        """Distance of the source face to every `every`-th frame (0, k, 2k...), streamed.

        Raises:
            NoFaceError: the source shows no face (the output is then not judged at all).
        """
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        reference = self.embed(source)
        if reference is None:
            raise NoFaceError(f"fidelity check: no face found in the source image (detector {self.detector})")
        indices: list[int] = []
        distances: list[float | None] = []
        for index, frame in enumerate(frames):
            if index % every:
                continue
            embedding = self.embed(frame)
            indices.append(index)
            distances.append(None if embedding is None else distance(reference, embedding, self.metric))
        if not indices:
            raise ValueError("fidelity check: the output has no frames")
        found = [d for d in distances if d is not None]
        return FidelityResult(
            every=every,
            frame_indices=indices,
            distances=distances,
            mean_distance=float(np.mean(found)) if found else NO_FACE_DISTANCE,
            worst5_distance=worst_mean(found) if found else NO_FACE_DISTANCE,
            missing_face_ratio=1.0 - len(found) / len(indices),
            provenance=self.provenance,
        )
