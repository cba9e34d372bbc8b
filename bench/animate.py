"""Benchmark of MCNet animation on the real vox-256 architecture (random weights), 256x256, CPU threads fixed.

Prints, in one run: the machine's fp32/bf16 ceilings (a large matmul and a 512-channel 3x3 conv), then for
(a) a straightforward per-frame loop written the way the authors' demo works (every network recomputed
per frame, batch 1, a host copy per frame), (b) our streaming `animate` in exact fp32 mode at batch sizes
1, 4 and 8, and (c) our fast mode (bf16 autocast where the CPU has it; fp16/bf16 on CUDA): frames/s,
achieved GFLOP/s, peak RSS, max abs difference and PSNR against (a) for the same seed. Each variant runs
in its own process so its peak RSS is its own. JSON goes to bench/results/.

    python -m bench.animate --frames 8
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from models.config import vox256
from models.cpu_allocator import retain_freed_memory
from models.fused import set_fused_kernels
from models.inference import animate, fast_dtype, use_channels_last, use_low_precision
from models.keypoints import movement_scale, normalize_keypoints
from models.loading import load_mcnet, save_checkpoint
from models.mcnet import MCNet

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / ".." / "shared" / "media" / "portrait_astronaut.png"
RESULTS = ROOT / "bench" / "results"
SEED = 2026


@dataclass
class Variant:
    """One measured configuration."""

    name: str
    kind: str  # "baseline" | "ours"
    batch_size: int
    mode: str
    device: str
    channels_last: bool = False  # NHWC conv weights: the PortraitAnimator default in fast mode on CUDA only
    autocast: bool = False  # fast mode through autocast on float32 weights instead of a converted decoder
    allocator: bool = False  # baseline with our glibc allocator thresholds too (ours always has them on CPU)


@dataclass
class Measurement:
    variant: Variant
    frames: int
    seconds: float
    fps: float
    cpu_seconds: float
    steady_s_per_frame_median: float
    steady_s_per_frame_min: float
    peak_rss_mb: float
    frames_path: str


# --------------------------------------------------------------------------- inputs and model


def make_inputs(frames: int, size: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The astronaut portrait (or a synthetic image) and a driving clip of small shifts/zooms of it."""
    if MEDIA.is_file():
        from PIL import Image

        image = Image.open(MEDIA).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
        source = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255
    else:
        g = torch.Generator().manual_seed(0)
        source = torch.rand(3, size, size, generator=g)
    driving = []
    for i in range(frames):
        angle = 2 * math.pi * i / max(frames, 1)
        theta = torch.tensor([[1.0 + 0.04 * math.sin(angle), 0.0, 0.06 * math.cos(angle)],
                              [0.0, 1.0 + 0.04 * math.sin(angle), 0.04 * math.sin(2 * angle)]])
        grid = torch.nn.functional.affine_grid(theta[None], [1, 3, size, size], align_corners=False)
        warped = torch.nn.functional.grid_sample(source[None], grid, padding_mode="border", align_corners=False)
        driving.append(warped[0].clamp(0, 1))
    return source, driving


def build_checkpoint(path: Path) -> str:
    """Seeded random vox-256 weights (noise strength 0.1 so the seed matters), saved in the authors' format."""
    torch.manual_seed(SEED)
    model = MCNet(vox256()).eval()
    with torch.no_grad():
        model.generator.mbUnit.styleconv.weight.fill_(0.1)
    return save_checkpoint(path, config=model.config, generator=model.generator, kp_detector=model.kp_detector)


# --------------------------------------------------------------------------- the variants


def run_baseline(model: MCNet, source: torch.Tensor, driving: list[torch.Tensor]) -> Iterator[np.ndarray]:
    """The authors' demo loop: kp(source) and kp(driving[0]) once, then per frame kp + full generator.

    Inputs are laid out as the demo builds them: HxWx3 arrays permuted to NCHW views (NHWC strides).
    """
    rng = torch.Generator().manual_seed(SEED)
    source = source.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    driving = [frame.permute(1, 2, 0).contiguous().permute(2, 0, 1) for frame in driving]
    with torch.no_grad():
        src = source[None]
        kp_source = model.kp_detector(src)
        kp_initial = model.kp_detector(driving[0][None])
        for frame in driving:
            kp_driving = model.kp_detector(frame[None])
            scale = movement_scale(kp_source, kp_initial)  # the demo recomputes the hulls every frame
            kp_norm = normalize_keypoints(kp_source, kp_driving, kp_initial, relative=True, scale=scale)
            out = model.generator(src, kp_norm, kp_source, rng=rng)
            yield out.prediction[0].permute(1, 2, 0).cpu().numpy()  # per-frame host copy


def run_ours(model: MCNet, source: torch.Tensor, driving: list[torch.Tensor], variant: Variant) -> Iterator[np.ndarray]:
    stream = animate(model, source, iter(driving), seed=SEED, batch_size=variant.batch_size, mode=variant.mode)
    for frame in stream:
        yield frame.permute(1, 2, 0).float().cpu().numpy()


def steady_state(arrivals: list[float], start: float, batch: int) -> tuple[float, float]:
    """(median, min) seconds per frame between batch completions, the first batch (per-job work) excluded."""
    ends = [start] + [arrivals[i] for i in range(batch - 1, len(arrivals), batch)]
    per_frame = [(b - a) / batch for a, b in zip(ends[1:], ends[2:], strict=False)]
    if not per_frame:
        return math.nan, math.nan
    return float(np.median(per_frame)), float(min(per_frame))


def _worker(checkpoint: str, variant: Variant, frames: int, threads: int, out_dir: str, queue: multiprocessing.Queue) -> None:
    torch.set_num_threads(threads)
    device = torch.device(variant.device)
    model = load_mcnet(checkpoint, device=device).model
    if variant.kind == "baseline":
        set_fused_kernels(model, False)  # the authors' arithmetic, op for op
        if variant.allocator:
            retain_freed_memory()
    elif device.type == "cpu":
        retain_freed_memory()  # what PortraitAnimator does on CPU
    if variant.kind == "ours" and variant.mode == "fast" and not variant.autocast:
        low = fast_dtype(device)
        assert low is not None
        use_low_precision(model, low)  # what PortraitAnimator does in fast mode
    if variant.kind == "ours" and variant.channels_last:
        use_channels_last(model)
    source, driving = make_inputs(frames, model.config.image_size)
    run = (lambda d: run_baseline(model, source, d)) if variant.kind == "baseline" else (
        lambda d: run_ours(model, source, d, variant))
    list(run(driving[:1]))  # warm-up: oneDNN primitive creation, allocator
    if device.type == "cuda":
        torch.cuda.synchronize()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    outputs, arrivals = [], []
    for frame in run(driving):
        outputs.append(frame)
        arrivals.append(time.perf_counter())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    median, best = steady_state(arrivals, start, variant.batch_size)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    path = Path(out_dir) / f"{variant.name}.npy"
    np.save(path, np.stack(outputs))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(Measurement(variant, frames, seconds, frames / seconds, cpu_seconds, median, best, rss, str(path)))


def measure(checkpoint: str, variant: Variant, frames: int, threads: int, out_dir: str) -> Measurement:
    """Run one variant in a fresh process (its own peak RSS, no cache shared with other variants)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(checkpoint, variant, frames, threads, out_dir, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


# --------------------------------------------------------------------------- ceilings and FLOPs


def _best_time(fn, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ceilings() -> dict[str, float]:
    """GFLOP/s of a 2048^3 matmul and a 512->512 3x3 conv at 64x64, in fp32 and (if fast) bf16."""
    results = {}
    dtypes = [torch.float32] + ([torch.bfloat16] if fast_dtype(torch.device("cpu")) else [])
    for dtype in dtypes:
        a = torch.randn(2048, 2048, dtype=dtype)
        b = torch.randn(2048, 2048, dtype=dtype)
        results[f"matmul_2048_{str(dtype)[6:]}"] = 2 * 2048**3 / _best_time(lambda: a @ b) / 1e9  # noqa: B023
        x = torch.randn(1, 512, 64, 64, dtype=dtype)
        w = torch.randn(512, 512, 3, 3, dtype=dtype)
        flops = 2 * 512 * 512 * 9 * 64 * 64
        with torch.no_grad():
            results[f"conv3x3_512_{str(dtype)[6:]}"] = (
                flops / _best_time(lambda: torch.nn.functional.conv2d(x, w, padding=1), repeats=3) / 1e9  # noqa: B023
            )
    return results


def flops_per_frame(checkpoint: str, frames: int) -> dict[str, float]:
    """FLOPs (2 per MAC) of one baseline frame (reference arithmetic) and of ours (fused kernels, source
    work once per job, amortised over `frames`)."""
    model = load_mcnet(checkpoint).model.requires_grad_(False)  # FlopCounterMode's module hooks need this
    source, driving = make_inputs(1, model.config.image_size)

    def count(fn) -> float:  # type: ignore[no-untyped-def]
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        return float(counter.get_total_flops())

    with torch.no_grad():
        src = source[None]
        frame = driving[0][None]
        rng = torch.Generator().manual_seed(0)
        set_fused_kernels(model, False)
        kp_source = model.kp_detector(src)
        baseline = count(lambda: model.generator(src, model.kp_detector(frame), kp_source, rng=rng))
        set_fused_kernels(model, True)
        encoding = model.generator.encode_source(src)
        per_job = count(lambda: (model.kp_detector(src), model.generator.encode_source(src)))
        per_frame = count(lambda: model.generator(src, model.kp_detector(frame), kp_source, rng=rng, encoding=encoding))
    return {
        "baseline_gflop_per_frame": baseline / 1e9,
        "source_work_gflop_per_job": per_job / 1e9,
        "ours_gflop_per_frame": (per_frame + per_job / frames) / 1e9,
    }


# --------------------------------------------------------------------------- main


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def variants(device: str, batch_sizes: list[int], explore: bool) -> list[Variant]:
    chosen = [Variant(f"{device}-baseline", "baseline", 1, "exact", device)]
    chosen += [Variant(f"{device}-exact-b{b}", "ours", b, "exact", device) for b in batch_sizes]
    if fast_dtype(torch.device(device)) is not None:
        nhwc = device == "cuda"  # the PortraitAnimator default
        chosen += [Variant(f"{device}-fast-b{b}", "ours", b, "fast", device, channels_last=nhwc)
                   for b in sorted({1, max(batch_sizes)})]
    if explore:
        if device == "cpu":
            chosen.append(Variant("cpu-baseline-allocator", "baseline", 1, "exact", device, allocator=True))
        chosen.append(Variant(f"{device}-exact-b4-nhwc", "ours", 4, "exact", device, channels_last=True))
        if fast_dtype(torch.device(device)) is not None:
            chosen.append(Variant(f"{device}-fast-b1-{'nchw' if device == 'cuda' else 'nhwc'}", "ours", 1, "fast",
                                  device, channels_last=device != "cuda"))
            chosen.append(Variant(f"{device}-fast-b1-autocast", "ours", 1, "fast", device, channels_last=True,
                                  autocast=True))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4, help="driving frames per variant (batch 8 needs >= 8)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--explore", action="store_true", help="also measure the other conv layout (NHWC exact, NCHW fast)")
    parser.add_argument("--skip-ceilings", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=200)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    report: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": args.threads,
                    "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "cpu_bf16": fast_dtype(torch.device("cpu")) is not None},
        "config": f"vox256 (random weights, seed {SEED})", "frames": args.frames,
        "load_average_before": list(os.getloadavg()),
    }
    if not args.skip_ceilings:
        report["ceilings_gflops"] = ceilings()
        table = Table(title="CPU ceilings (GFLOP/s)")
        table.add_column("kernel")
        table.add_column("GFLOP/s", justify="right")
        for name, value in report["ceilings_gflops"].items():
            table.add_row(name, f"{value:.0f}")
        console.print(table)

    with tempfile.TemporaryDirectory(prefix="bench-animate-") as tmp:
        checkpoint = str(Path(tmp) / "vox256-random.pth.tar")
        build_checkpoint(Path(checkpoint))
        report["flops"] = flops_per_frame(checkpoint, args.frames)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        if not torch.cuda.is_available():
            console.print("[yellow]CUDA is not available on this machine: the CUDA variants are skipped.[/]")
        rows = []
        for device in devices:
            measured = [measure(checkpoint, v, args.frames, args.threads, tmp) for v in variants(device, batch_sizes, args.explore)]
            baseline = measured[0]
            reference = np.load(baseline.frames_path)
            exact = next((m for m in measured if m.variant.mode == "exact" and m.variant.kind == "ours"), baseline)
            exact_frames = np.load(exact.frames_path)
            for m in measured:
                frames = np.load(m.frames_path)
                gflop = report["flops"]["baseline_gflop_per_frame" if m.variant.kind == "baseline" else "ours_gflop_per_frame"]
                # CPU time is what the variant consumed: on a shared machine it is steadier than wall time.
                cpu_fps = args.threads * m.frames / m.cpu_seconds if device == "cpu" else m.fps
                base_cpu_fps = args.threads * baseline.frames / baseline.cpu_seconds if device == "cpu" else baseline.fps
                rows.append({
                    **asdict(m.variant), "frames": m.frames, "seconds": m.seconds, "fps": m.fps,
                    "cpu_seconds": m.cpu_seconds, "fps_from_cpu_time": cpu_fps,
                    "steady_s_per_frame_median": m.steady_s_per_frame_median,
                    "steady_s_per_frame_min": m.steady_s_per_frame_min,
                    "steady_speedup_vs_baseline_min": baseline.steady_s_per_frame_min / m.steady_s_per_frame_min,
                    "speedup_vs_baseline": m.fps / baseline.fps,
                    "speedup_vs_baseline_cpu_time": cpu_fps / base_cpu_fps, "gflops_achieved": gflop * m.fps,
                    "peak_rss_mb": m.peak_rss_mb,
                    "max_abs_diff_vs_baseline": float(np.abs(frames - reference).max()),
                    "psnr_vs_baseline_db": psnr(frames, reference),
                    "psnr_vs_exact_db": psnr(frames, exact_frames),
                })
    report["results"] = rows
    report["load_average_after"] = list(os.getloadavg())
    table = Table(title=f"MCNet vox-256 animation, 256x256, {args.threads} threads, {args.frames} frames per variant")
    for column in ("variant", "frames/s", "speed-up", "speed-up (CPU time)", "steady s/frame med/min",
                   "steady speed-up (min)", "GFLOP/s", "peak RSS MB",
                   "max|diff| vs (a)", "PSNR vs (a) dB", "PSNR vs exact dB"):
        table.add_column(column, justify="right" if column != "variant" else "left")
    for row in rows:
        table.add_row(row["name"], f"{row['fps']:.3f}", f"{row['speedup_vs_baseline']:.2f}x",
                      f"{row['speedup_vs_baseline_cpu_time']:.2f}x",
                      f"{row['steady_s_per_frame_median']:.2f}/{row['steady_s_per_frame_min']:.2f}",
                      f"{row['steady_speedup_vs_baseline_min']:.2f}x", f"{row['gflops_achieved']:.0f}",
                      f"{row['peak_rss_mb']:.0f}", f"{row['max_abs_diff_vs_baseline']:.2e}",
                      f"{row['psnr_vs_baseline_db']:.1f}", f"{row['psnr_vs_exact_db']:.1f}")
    console.print(table)
    flops = report["flops"]
    console.print(f"GFLOP per frame: baseline {flops['baseline_gflop_per_frame']:.1f}, ours {flops['ours_gflop_per_frame']:.1f} "
                  f"(source work {flops['source_work_gflop_per_job']:.1f} once per job)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"animate-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=1))
    console.print(f"load average before/after: {report['load_average_before']} / {report['load_average_after']}")
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
