"""Calibrate the identity threshold (deepface Dlib, cosine) on real photos of different people.

Photos (all real, all offline): the BSD-3 talking-man clip (`../shared/media`, 25 frames spread over 15 s:
pose, expression and lighting vary), Grace Hopper (matplotlib's sample data), Eileen Collins
(scikit-image's `astronaut`), and the 100 face thumbnails of scikit-image's `lfw_subset` (25x25 px,
identities unknown: used only as strangers of the three named people, a low-resolution stress set).
Each still is also degraded the way uploads are (flip, crop, JPEG q25, half-size round trip, +30
brightness, 8 degree rotation) to give same-person pairs.

Genuine pairs: two images of the same person. Impostor pairs: images of two different named people,
and LFW faces against the named people. Prints the distributions, FAR/FRR at candidate thresholds and
the equal-error point; writes JSON to bench/results/. `docs/identity-calibration.md` records a run.

    python -m bench.calibrate_identity
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from pipeline.checks.identity import IdentityVerifier, distance
from pipeline.images import load_image
from pipeline.video.reader import iter_frames

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / ".." / "shared" / "media"
RESULTS = ROOT / "bench" / "results"
CANDIDATES = (0.04, 0.045, 0.05, 0.055, 0.06, 0.065, 0.07, 0.08, 0.1)


def degraded(image: np.ndarray) -> dict[str, np.ndarray]:
    """The same photo as uploads mangle it."""
    height, width = image.shape[:2]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=25)
    half = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), 8, 1.0)
    return {
        "original": image,
        "flip": np.ascontiguousarray(image[:, ::-1]),
        "crop": image[height // 20 : height - height // 20, width // 20 : width - width // 20].copy(),
        "jpeg25": np.asarray(Image.open(buffer).convert("RGB")),
        "half": cv2.resize(half, (width, height), interpolation=cv2.INTER_CUBIC),
        "bright": np.clip(image.astype(int) + 30, 0, 255).astype(np.uint8),
        "rotate8": cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REPLICATE),
    }


def lfw_faces() -> list[np.ndarray]:
    """scikit-image's 100 LFW face thumbnails, upscaled and padded so the detector can find them."""
    from skimage import data

    faces = []
    for thumb in data.lfw_subset()[:100]:
        grey = cv2.resize((thumb * 255).astype(np.uint8), (200, 200), interpolation=cv2.INTER_CUBIC)
        grey = cv2.copyMakeBorder(grey, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
        faces.append(np.repeat(grey[:, :, None], 3, axis=2))
    return faces


def embed_all(verifier: IdentityVerifier, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, image in images.items():
        vector = verifier.embed(image)
        if vector is not None:
            out[name] = vector
    return out


def rates(genuine: list[float], impostor: list[float], threshold: float) -> tuple[float, float]:
    """(false accept rate, false reject rate) at `threshold` (accept when distance <= threshold)."""
    far = float(np.mean(np.asarray(impostor) <= threshold))
    frr = float(np.mean(np.asarray(genuine) > threshold))
    return far, frr


def summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {
        "n": int(array.size),
        "min": float(array.min()),
        "p5": float(np.percentile(array, 5)),
        "median": float(np.median(array)),
        "p95": float(np.percentile(array, 95)),
        "p99": float(np.percentile(array, 99)),
        "max": float(array.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="dlib", choices=["dlib", "opencv"])
    parser.add_argument("--clip-frames", type=int, default=25, help="frames taken from the talking-man clip")
    args = parser.parse_args()
    console = Console()
    verifier = IdentityVerifier(detector=args.detector)
    started = time.perf_counter()

    people: dict[str, dict[str, np.ndarray]] = {}
    clip = MEDIA / "talking_man_320x240_15s.mov"
    step = max(1, 375 // args.clip_frames)
    frames = {f"frame{i:03d}": f.copy() for i, f in enumerate(iter_frames(clip)) if i % step == 0}
    people["talking_man"] = embed_all(verifier, frames)
    for name, path in (
        ("grace_hopper", MEDIA / "portrait_grace_hopper.jpg"),
        ("astronaut", MEDIA / "portrait_astronaut.png"),
    ):
        people[name] = embed_all(verifier, degraded(load_image(path, max_pixels=10**8)))
    strangers = embed_all(verifier, {f"lfw{i:03d}": face for i, face in enumerate(lfw_faces())})

    genuine: dict[str, list[float]] = {}
    for name, vectors in people.items():
        genuine[name] = [distance(a, b) for a, b in itertools.combinations(vectors.values(), 2)]
    impostor_named = [
        distance(a, b)
        for (n1, v1), (n2, v2) in itertools.combinations(people.items(), 2)
        for a in v1.values()
        for b in v2.values()
    ]
    impostor_lfw = [
        distance(a, b) for vectors in people.values() for a in vectors.values() for b in strangers.values()
    ]
    all_genuine = [d for values in genuine.values() for d in values]
    all_impostor = impostor_named + impostor_lfw

    table = Table(title=f"Dlib cosine distances ({args.detector} detector)")
    for column in ("set", "n", "min", "p5", "median", "p95", "p99", "max"):
        table.add_column(column, justify="right" if column != "set" else "left")
    sets = {
        **{f"same: {k}": v for k, v in genuine.items()},
        "different: named people": impostor_named,
        "different: LFW vs named": impostor_lfw,
    }
    stats = {name: summary(values) for name, values in sets.items()}
    for name, s in stats.items():
        table.add_row(
            name, str(s["n"]), *(f"{s[k]:.4f}" for k in ("min", "p5", "median", "p95", "p99", "max"))
        )
    console.print(table)

    rate_table = Table(title="accept when distance <= threshold")
    for column in ("threshold", "false accepts", "FAR", "false rejects", "FRR"):
        rate_table.add_column(column, justify="right")
    rate_rows = []
    for threshold in CANDIDATES:
        far, frr = rates(all_genuine, all_impostor, threshold)
        rate_rows.append({"threshold": threshold, "far": far, "frr": frr})
        rate_table.add_row(
            f"{threshold:.3f}",
            str(round(far * len(all_impostor))),
            f"{far:.4f}",
            str(round(frr * len(all_genuine))),
            f"{frr:.4f}",
        )
    console.print(rate_table)
    grid = np.linspace(0.0, 0.2, 2001)
    gaps = [abs(np.subtract(*rates(all_genuine, all_impostor, float(t)))) for t in grid]
    eer_threshold = float(grid[int(np.argmin(gaps))])
    console.print(
        f"largest same-person distance {max(all_genuine):.4f}; smallest different-person distance "
        f"{min(all_impostor):.4f}; equal-error threshold {eer_threshold:.4f}; "
        f"{time.perf_counter() - started:.0f} s"
    )

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = RESULTS / f"calibrate_identity-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "provenance": verifier.provenance.model_dump(),
                "sets": stats,
                "rates": rate_rows,
                "eer_threshold": eer_threshold,
                "embedded": {k: sorted(v) for k, v in people.items()},
                "lfw_detected": len(strangers),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
