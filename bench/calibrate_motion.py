"""Calibrate the motion and driver-leak checks on real clips and on the demo model's renders.

Driving: the first 10 s of the BSD-3 talking-man clip (`../shared/media`), tracked and cropped at
256 px by `pipeline.faces.portrait.crop_driving` (as the render does). Outputs scored against it, each through
`pipeline.checks.motion.check_motion` at every 3rd frame (`Settings.fidelity_every`):

* `self`: the driving crops themselves (perfect motion); `self, degraded`: the same at half size and
  back, JPEG quality 30 (perfect motion seen through landmark noise);
* `frozen`: the portrait crop (frame 10) held still for 10 s;
* `reversed`: the driving crops backwards; `shifted 1 s`: frames 25..274 (one second late);
  `other window`: frames 125..374 (the same person saying something else);
* `demo render`: the demo model (`flows/demo/assets`, 128 px, trained on this speaker) animating its
  portrait with the demo job's driving stretch (frames 300..374 of the clip), scored on 128 px crops;
  `demo render, 10 s`: the same model driven by the 10 s used above.

Leak (`pipeline.checks.leak.check_leak`, 8 sampled frames): portrait Grace Hopper (another person) with
the output being the driver's own crops (a total leak), Grace held still (no leak), and the demo
model animating Grace with the talking man (a real cross-identity render); and the same-person case
(portrait = the speaker), which the policy skips. Prints tables; JSON to bench/results/.

    python -m bench.calibrate_motion
"""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from pipeline.checks.identity import IdentityVerifier
from pipeline.checks.leak import check_leak
from pipeline.checks.motion import check_motion
from pipeline.faces.landmarks import shared_detector
from pipeline.faces.portrait import crop_driving, prepare_portrait
from pipeline.images import load_image
from pipeline.video.reader import iter_frames

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / ".." / "shared" / "media"
RESULTS = ROOT / "bench" / "results"
CLIP = MEDIA / "talking_man_320x240_15s.mov"
DEMO = ROOT / "flows" / "demo" / "assets"
EVERY, FPS, SECONDS = 3, 25, 10


def degrade(frame: np.ndarray) -> np.ndarray:
    """Half size and back, then JPEG quality 30: pixels change, motion does not."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    buffer = io.BytesIO()
    Image.fromarray(back).save(buffer, format="JPEG", quality=30)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def demo_render(portrait: np.ndarray, driving: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The demo checkpoint animating `portrait` (full image) with `driving` (128 px crops)."""
    from pipeline.animation import PortraitAnimator

    animator = PortraitAnimator(DEMO / "mcnet_demo128.pth.tar", device="cpu", mode="exact", batch_size=4)
    crop = prepare_portrait(portrait, size=128).crop
    return list(animator.render(crop, iter(driving), seed=1)), [crop]


def progress(name: str, scores: dict[str, float | None]) -> None:
    """One line per case as it is measured (the run is minutes long on a loaded machine)."""
    shown = ", ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in scores.items())
    print(f"{name}: {shown}", flush=True)


def crops_of(path: Path, size: int) -> list[np.ndarray]:
    return list(crop_driving(path, size=size, max_missing_ratio=0.1))


def main() -> None:
    console = Console()
    started = time.perf_counter()
    detector = shared_detector()
    frames = SECONDS * FPS
    crops = crops_of(CLIP, 256)
    driving = crops[:frames]
    portrait = crops[10]
    variants: dict[str, list[np.ndarray]] = {
        "self": driving,
        "self, degraded": [degrade(f) for f in driving],
        "frozen": [portrait] * frames,
        "reversed": driving[::-1],
        "shifted 1 s": crops[FPS : FPS + frames],
        "other window": crops[125 : 125 + frames],
    }
    motion: dict[str, dict[str, float]] = {}
    for name, output in variants.items():
        motion[name] = check_motion(detector, driving, output, every=EVERY).scores()
        progress(name, motion[name])

    # The demo job: portrait frame 40, driving frames 300..374 of the demo clip, at the model's 128 px.
    demo_clip = DEMO / "talking_man_192.mp4"
    demo_frames = list(iter_frames(demo_clip))
    demo_crops = crops_of(demo_clip, 128)
    demo_driving = demo_crops[300:375]
    demo_out, _ = demo_render(demo_frames[40], demo_driving)
    motion["demo render (demo job)"] = check_motion(detector, demo_driving, demo_out, every=EVERY).scores()
    progress("demo render (demo job)", motion["demo render (demo job)"])
    long_driving = [cv2.resize(f, (128, 128), interpolation=cv2.INTER_AREA) for f in driving]
    long_out, _ = demo_render(demo_frames[40], long_driving)
    motion["demo render, 10 s"] = check_motion(detector, long_driving, long_out, every=EVERY).scores()
    progress("demo render, 10 s", motion["demo render, 10 s"])

    verifier = IdentityVerifier()
    grace = load_image(MEDIA / "portrait_grace_hopper.jpg", max_pixels=40_000_000)
    speaker = next(iter(iter_frames(CLIP)))
    cross_out, _ = demo_render(grace, long_driving)
    motion["demo render, Grace Hopper"] = check_motion(
        detector, long_driving, cross_out, every=EVERY
    ).scores()
    progress("demo render, Grace Hopper", motion["demo render, Grace Hopper"])
    grace_crop = prepare_portrait(grace, size=256).crop
    leak_cases = {
        "Grace portrait, output = driver (total leak)": (grace, driving),
        "Grace portrait, output = Grace still (no leak)": (grace, [grace_crop] * frames),
        "Grace portrait, demo model render": (grace, cross_out),
        "speaker portrait, output = driver (same person)": (speaker, driving),
        "speaker portrait, demo render, 10 s": (speaker, long_out),
    }
    leak: dict[str, dict[str, Any]] = {}
    for name, (source, output) in leak_cases.items():
        report = check_leak(verifier, source, iter(driving), len(driving), iter(output), len(output))
        leak[name] = {**report.scores(), "to_driver": report.to_driver, "to_portrait": report.to_portrait}
        progress(name, report.scores())

    table = Table(title=f"motion scores, driving = {SECONDS} s of the talking man, every {EVERY}rd frame")
    columns = list(next(iter(motion.values())))
    table.add_column("output")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for name, scores in motion.items():
        table.add_row(name, *(f"{scores[c]:.3f}" for c in columns))
    console.print(table)
    leaks = Table(title="driver identity leak (Dlib cosine distances)")
    for column in ("case", "driver vs portrait", "leak margin"):
        leaks.add_column(column, justify="left" if column == "case" else "right")
    for name, row in leak.items():
        margin = row["leak_margin"]
        leaks.add_row(
            name, f"{row['driver_portrait_distance']:.3f}", "-" if margin is None else f"{margin:.3f}"
        )
    console.print(leaks)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"calibrate_motion-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(),
                "every": EVERY,
                "frames": frames,
                "landmark_model": detector.model.as_dict(),
                "motion": motion,
                "leak": leak,
                "seconds": time.perf_counter() - started,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    console.print(f"wrote {out.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
