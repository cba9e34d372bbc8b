"""Driver identity leak: does the output look more like the driving video's person than the portrait's?

Motion transfer can carry the driver's face shape into the output (MCNet's cross-identity similarity
is the lowest of the methods compared in MobilePortrait, arXiv 2407.05712, Table 1). The output's
identity check only compares it with the portrait, which a half-way face can still pass; this check
compares the output with both.

The driver is represented by the mean Dlib embedding of `samples` frames spread over the driving
video; the output by the same number of frames spread over it. Per output frame, the **leak margin**
is `distance(output, driver) - distance(output, portrait)` (Dlib cosine distances): how much farther
the output is from the driver than from the portrait. A faithful output of another person has a
margin near the distance between the two people (~0.1-0.2); an output that became the driver has a
negative one. The score is the mean margin. When the driver is the portrait's person (their distance
is within the policy's same-person bound) there is nothing to leak and the policy skips the margin;
`driver_portrait_distance` is always reported, so the policy can tell.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from pipeline.checks.identity import IdentityProvenance, IdentityVerifier, distance
from pipeline.faces.detection import NoFaceError

DEFAULT_SAMPLES = 8


class LeakReport(BaseModel):
    """Output vs driver and portrait: per sampled output frame, the two distances and the margin."""

    model_config = ConfigDict(frozen=True)

    driver_portrait_distance: float
    leak_margin: float | None  # None: no sampled output frame showed a face
    driver_frames: list[int]
    output_frames: list[int]
    to_driver: list[float | None]
    to_portrait: list[float | None]
    provenance: IdentityProvenance

    def scores(self) -> dict[str, float | None]:
        """The leak part of the policy's `CheckScores`."""
        return {"driver_portrait_distance": self.driver_portrait_distance, "leak_margin": self.leak_margin}

    def audit_details(self) -> dict[str, Any]:
        """Plain data for the check result."""

        def rounded(values: list[float | None]) -> list[float | None]:
            return [None if v is None else round(v, 4) for v in values]

        return {
            "driver_portrait_distance": round(self.driver_portrait_distance, 6),
            "leak_margin": None if self.leak_margin is None else round(self.leak_margin, 6),
            "driver_frames": self.driver_frames,
            "output_frames": self.output_frames,
            "to_driver": rounded(self.to_driver),
            "to_portrait": rounded(self.to_portrait),
            **self.provenance.model_dump(),
        }


def spread(count: int, samples: int) -> list[int]:
    """`samples` frame indices spread evenly over `count` frames (all of them when there are fewer)."""
    if count <= 0:
        return []
    if count <= samples:
        return list(range(count))
    return sorted({int(round(v)) for v in np.linspace(0, count - 1, samples)})


def _embed_at(
    verifier: IdentityVerifier, frames: Iterable[np.ndarray], wanted: list[int]
) -> list[tuple[int, np.ndarray | None]]:
    chosen = set(wanted)
    found: list[tuple[int, np.ndarray | None]] = []
    for index, frame in enumerate(frames):
        if index in chosen:
            found.append((index, verifier.embed(frame)))
            if len(found) == len(chosen):
                break
    return found


def check_leak(
    verifier: IdentityVerifier,
    portrait: np.ndarray,
    driving_frames: Iterable[np.ndarray],
    driving_count: int,
    output_frames: Iterable[np.ndarray],
    output_count: int,
    *,
    samples: int = DEFAULT_SAMPLES,
) -> LeakReport:
    """Distances of `samples` output frames to the driver (mean embedding) and to the portrait.

    Raises:
        NoFaceError: the portrait, or every sampled driving frame, shows no face.
    """
    reference = verifier.embed(portrait)
    if reference is None:
        raise NoFaceError("leak check: no face found in the portrait")
    drivers = [
        (i, e)
        for i, e in _embed_at(verifier, driving_frames, spread(driving_count, samples))
        if e is not None
    ]
    if not drivers:
        raise NoFaceError("leak check: no face found in the sampled driving frames")
    driver = np.mean([e / np.linalg.norm(e) for _, e in drivers], axis=0)
    outputs = _embed_at(verifier, output_frames, spread(output_count, samples))
    to_driver = [None if e is None else distance(e, driver) for _, e in outputs]
    to_portrait = [None if e is None else distance(e, reference) for _, e in outputs]
    margins = [d - p for d, p in zip(to_driver, to_portrait, strict=True) if d is not None and p is not None]
    return LeakReport(
        driver_portrait_distance=distance(driver, reference),
        leak_margin=float(np.mean(margins)) if margins else None,
        driver_frames=[i for i, _ in drivers],
        output_frames=[i for i, _ in outputs],
        to_driver=to_driver,
        to_portrait=to_portrait,
        provenance=verifier.provenance,
    )
