"""Cost of the identity and artifact checks against the cost of animating the clip they judge.

Makes a 10 s, 25 fps, 256x256 H.264 clip of real face crops (the BSD-3 talking-man clip, tracked and
cropped by `pipeline.faces.portrait`), then times at the default sampling (every 3rd frame, as
`Settings.fidelity_every`): the likeness binding (once per job), identity fidelity, the artifact
checks, and the motion checks (the driving video re-tracked into crops as the render does, then
68-point landmarks on both videos) and the driver-leak check (8 + 8 sampled frames) that
`flows.render.checks.score_output` adds, per frame of the clip. The animation time per frame is measured on MCNet's vox256 config
(random weights; the cost does not depend on the weights) through `PortraitAnimator`, over a couple
of frames after a warm-up, and compared with the documented figure (`ANIMATION_S_PER_FRAME`, measured
on this CPU when idle). Target: checks <= 10% of the animation time. Prints a table; JSON to
bench/results/.

    python -m bench.checks [--every 3] [--animation-frames 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pipeline.checks.artifacts import check_artifacts
from pipeline.checks.identity import IdentityVerifier
from pipeline.checks.leak import check_leak
from pipeline.checks.motion import check_motion
from pipeline.faces.landmarks import shared_detector
from pipeline.faces.portrait import crop_driving, prepare_portrait
from pipeline.video.reader import VideoWriter, iter_frames

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / ".." / "shared" / "media"
RESULTS = ROOT / "bench" / "results"
ANIMATION_S_PER_FRAME = 2.4  # MCNet vox256, 256x256, exact fp32, this 2-core CPU, idle (models' benchmark)
SIZE, SECONDS, FPS = 256, 10, 25
TARGET_SHARE = 0.10


def make_clip(folder: Path) -> tuple[Path, np.ndarray]:
    """10 s of 256x256 face crops from the real clip, and the portrait crop of its first frame."""
    source_clip = MEDIA / "talking_man_320x240_15s.mov"
    first = next(iter(iter_frames(source_clip)))
    portrait = prepare_portrait(first, size=SIZE).crop
    crops = crop_driving(source_clip, size=SIZE, max_missing_ratio=0.1)
    path = folder / "clip.mp4"
    with VideoWriter(path, fps=FPS, size=(SIZE, SIZE)) as writer:
        for index, crop in enumerate(crops):
            if index >= SECONDS * FPS:
                break
            writer.write(crop)
    return path, portrait


def animation_seconds_per_frame(folder: Path, frames: int, portrait: np.ndarray, clip: Path) -> float | None:
    """Seconds per frame of `PortraitAnimator.render` on vox256 (random weights), after one warm-up frame."""
    if frames < 1:
        return None
    import torch

    from models.config import vox256
    from models.loading import save_checkpoint
    from models.mcnet import MCNet
    from pipeline.animation import PortraitAnimator

    torch.manual_seed(0)
    model = MCNet(vox256()).eval()
    checkpoint = folder / "vox256-random.pth.tar"
    save_checkpoint(checkpoint, config=model.config, generator=model.generator, kp_detector=model.kp_detector)
    del model
    animator = PortraitAnimator(checkpoint, device="cpu", mode="exact", batch_size=1)
    driving = [frame for _, frame in zip(range(frames + 1), iter_frames(clip), strict=False)]
    stream = animator.render(portrait, iter(driving), seed=1)
    next(stream)  # warm-up: source encoding, first-call allocations
    started = time.perf_counter()
    made = sum(1 for _ in stream)
    return (time.perf_counter() - started) / max(made, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--every", type=int, default=3, help="sample every k-th frame (Settings.fidelity_every)"
    )
    parser.add_argument(
        "--animation-frames", type=int, default=2, help="frames to time the animation on (0: skip)"
    )
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip, portrait = make_clip(folder)
        frames = SECONDS * FPS
        verifier = IdentityVerifier()
        verifier.embed(portrait)  # load the model outside the timings (once per worker process)

        timings: dict[str, float] = {}
        started = time.perf_counter()
        binding = verifier.compare(portrait, portrait[:, ::-1].copy())
        timings["likeness binding (once per job)"] = time.perf_counter() - started
        started = time.perf_counter()
        fidelity = verifier.fidelity(portrait, iter_frames(clip), every=args.every)
        timings["identity fidelity"] = time.perf_counter() - started
        started = time.perf_counter()
        artifacts = check_artifacts(portrait, clip, sample_every=args.every)
        timings["artifact checks"] = time.perf_counter() - started
        detector = shared_detector()
        detector.model  # noqa: B018 - load and hash the predictor outside the timings (once per process)
        started = time.perf_counter()
        crops = crop_driving(clip, size=SIZE, max_missing_ratio=0.1)
        timings["motion: driving re-tracked (crop plan)"] = time.perf_counter() - started
        started = time.perf_counter()
        motion = check_motion(detector, crops, iter_frames(clip), every=args.every)
        timings["motion: landmarks + scores"] = time.perf_counter() - started
        started = time.perf_counter()
        leak = check_leak(verifier, portrait, iter_frames(clip), frames, iter_frames(clip), frames)
        timings["driver leak"] = time.perf_counter() - started
        animation = animation_seconds_per_frame(folder, args.animation_frames, portrait, clip)

    checks_total = sum(timings.values())
    per_frame = checks_total / frames
    table = Table(
        title=f"checks on a {SECONDS} s {SIZE}x{SIZE} clip ({frames} frames), every {args.every}th frame"
    )
    for column in ("step", "seconds", "ms per clip frame"):
        table.add_column(column, justify="right" if column != "step" else "left")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.2f}", f"{1000 * seconds / frames:.1f}")
    table.add_row("all checks", f"{checks_total:.2f}", f"{1000 * per_frame:.1f}")
    console.print(table)
    shares = {"documented": per_frame / ANIMATION_S_PER_FRAME}
    lines = [
        f"animation (documented, idle CPU): {ANIMATION_S_PER_FRAME:.2f} s/frame -> checks take "
        f"{shares['documented']:.1%} of it"
    ]
    if animation is not None:
        shares["measured"] = per_frame / animation
        lines.append(
            f"animation (measured now, vox256 exact, {args.animation_frames} frames): {animation:.2f} s/frame"
            f" -> checks take {shares['measured']:.1%} of it"
        )
    for line in lines:
        console.print(line)
    verdict = "meets" if max(shares.values()) <= TARGET_SHARE else "misses"
    console.print(f"target <= {TARGET_SHARE:.0%}: {verdict}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"checks-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(),
                "machine": {"platform": platform.platform()},
                "clip": {"seconds": SECONDS, "fps": FPS, "size": SIZE, "frames": frames},
                "every": args.every,
                "timings_s": timings,
                "checks_s_per_frame": per_frame,
                "animation_s_per_frame": {"documented": ANIMATION_S_PER_FRAME, "measured": animation},
                "share_of_animation": shares,
                "target": TARGET_SHARE,
                "fidelity": fidelity.scores(),
                "artifacts": artifacts.scores(),
                "binding_distance": binding.distance,
                "motion": motion.scores(),
                "leak": leak.scores(),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
