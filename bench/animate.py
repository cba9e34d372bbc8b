"""Benchmark of MCNet animation against the authors' own demo loop, in one run, CPU threads fixed.

Variants, each in its own process (its own peak RSS) and run in interleaved rounds (the machine is shared:
only ratios measured in the same run mean anything):

* (A) the authors' code: their `KPDetector`, `Unet_Generator_keypoint_aware` + `ExpendMemoryUnit` and
  `normalize_kp`, imported from a local checkout of harlanhong/ICCV2023-MCNET given by
  `--reference-dir` or `LIKENESS_MCNET_REFERENCE_DIR`, our checkpoint loaded into their networks
  (`strict=True`), their demo's `make_animation` loop. Skipped with a note when the path is absent or
  the model is not the vox-256 architecture their code hard-codes. The checkout is never modified:
  missing third-party imports (einops, torchdiffeq) get stand-ins in `sys.modules` at run time.
* (a) the same loop written with our modules and the reference arithmetic (`set_fused_kernels(False)`).
* ours: streaming `animate` in exact and fast mode (as `PortraitAnimator` sets them up), 1 or 2 intra-op
  threads, and two single-thread workers rendering at the same time ("2 in flight").

Models: `--model vox256` (seeded random weights of the released architecture, 256x256) or `--model demo`
(the trained demo checkpoint `flows/demo/assets/mcnet_demo128.pth.tar`, 128x128, driven by its held-out
frames; random weights overstate low-precision accuracy). Reported: s/frame (wall and CPU time), the ratio
to (A) (or to (a) when (A) is skipped), peak RSS, max abs difference and PSNR against exact mode.
JSON goes to bench/results/.

    python -m bench.animate --frames 6 --rounds 3 --reference-dir /tmp/mcnet-ref
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from models.config import MCNetConfig, vox256
from models.cpu_allocator import retain_freed_memory
from models.fused import set_fused_kernels
from models.inference import animate, cpu_has_amx, fast_dtype, use_channels_last, use_low_precision
from models.keypoints import movement_scale, normalize_keypoints
from models.loading import load_mcnet, save_checkpoint
from models.mcnet import MCNet
from pipeline.video.reader import iter_frames

if TYPE_CHECKING:
    import multiprocessing.synchronize
    from multiprocessing.queues import Queue

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / ".." / "shared" / "media" / "portrait_astronaut.png"
DEMO_CHECKPOINT = ROOT / "flows" / "demo" / "assets" / "mcnet_demo128.pth.tar"
DEMO_VIDEO = ROOT / "flows" / "demo" / "assets" / "talking_man_192.mp4"
DEMO_HELDOUT_SECONDS = 12.0  # frame 300 at 25 fps: the first frame the demo model never trained on
DEMO_FPS = 25
RESULTS = ROOT / "bench" / "results"
REFERENCE_ENV = "LIKENESS_MCNET_REFERENCE_DIR"
SEED = 2026


@dataclass
class Variant:
    """One measured configuration."""

    name: str
    kind: str  # "authors" | "baseline" | "ours"
    batch_size: int
    mode: str
    device: str
    threads: int = 2
    in_flight: int = 1  # workers rendering at the same time, `threads` each (throughput of a worker pool)
    channels_last: bool = False  # NHWC conv weights: the PortraitAnimator default in fast mode on CUDA only
    force_bf16: bool = False  # today's bf16 fast mode even where fast_dtype() declines it (no AMX)
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
        theta = torch.tensor(
            [
                [1.0 + 0.04 * math.sin(angle), 0.0, 0.06 * math.cos(angle)],
                [0.0, 1.0 + 0.04 * math.sin(angle), 0.04 * math.sin(2 * angle)],
            ]
        )
        grid = torch.nn.functional.affine_grid(theta[None], [1, 3, size, size], align_corners=False)
        warped = torch.nn.functional.grid_sample(
            source[None], grid, padding_mode="border", align_corners=False
        )
        driving.append(warped[0].clamp(0, 1))
    return source, driving


def demo_inputs(frames: int, size: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The demo model's held-out frames: frame 300 of its training video as source, the next `frames` as driving."""
    if shutil.which("ffmpeg") is None or not DEMO_VIDEO.is_file():
        return make_inputs(frames, size)
    first = round(DEMO_HELDOUT_SECONDS * DEMO_FPS)
    video = [
        torch.from_numpy(frame.copy()).permute(2, 0, 1).float() / 255
        for frame in itertools.islice(iter_frames(DEMO_VIDEO, size=size), first, first + frames + 1)
    ]
    return video[0], list(video[1:])


def inputs_for(model: str, frames: int, size: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    return demo_inputs(frames, size) if model == "demo" else make_inputs(frames, size)


def build_checkpoint(path: Path) -> str:
    """Seeded random vox-256 weights (noise strength 0.1 so the seed matters), saved in the authors' format."""
    torch.manual_seed(SEED)
    model = MCNet(vox256()).eval()
    with torch.no_grad():
        model.generator.mbUnit.styleconv.weight.fill_(0.1)
    return save_checkpoint(
        path, config=model.config, generator=model.generator, kp_detector=model.kp_detector
    )


# --------------------------------------------------------------------------- the authors' code


def reference_problem(reference_dir: str | None, config: MCNetConfig) -> str | None:
    """Why the authors' code cannot be measured here (None when it can)."""
    if not reference_dir:
        return f"no authors' checkout given (--reference-dir or {REFERENCE_ENV})"
    directory = Path(reference_dir)
    if not (directory / "modules" / "generator.py").is_file() or not (directory / "demo.py").is_file():
        return (
            f"{directory} is not a checkout of harlanhong/ICCV2023-MCNET (no modules/generator.py, demo.py)"
        )
    if config != vox256():
        return "the authors' code hard-codes the vox-256 widths (512-channel memory, 15 keypoints); this model differs"
    return None


def _install_reference_shims() -> None:
    """Stand-ins for the authors' third-party imports that this environment lacks, registered in sys.modules.

    einops: only `rearrange`/`Rearrange` for the two patterns the memory unit uses (exact views, no copy
    semantics beyond einops' own). torchdiffeq: imported at module level by their dense_motion.py but
    used only by experimental classes the README model never builds.
    """
    try:
        import einops  # noqa: F401
    except ImportError:

        def rearrange(tensor: torch.Tensor, pattern: str, **axes: int) -> torch.Tensor:
            pattern = " ".join(pattern.split())
            if pattern in ("b c x y -> b (x y) c", "b c w h -> b (w h) c"):
                return tensor.flatten(2).transpose(1, 2)
            if pattern in ("b (x y) c -> b c x y", "b (w h) c -> b c w h"):
                first = axes.get("x", axes.get("w"))
                assert first is not None
                return tensor.transpose(1, 2).reshape(tensor.shape[0], tensor.shape[2], first, -1)
            raise NotImplementedError(f"einops stand-in: pattern {pattern!r}")

        class Rearrange(torch.nn.Module):
            def __init__(self, pattern: str, **axes: int) -> None:
                super().__init__()
                self.pattern, self.axes = pattern, axes

            def forward(self, tensor: torch.Tensor) -> torch.Tensor:
                return rearrange(tensor, self.pattern, **self.axes)

        einops_module, layers, layers_torch = (
            types.ModuleType(n) for n in ("einops", "einops.layers", "einops.layers.torch")
        )
        einops_module.rearrange = rearrange  # type: ignore[attr-defined]
        einops_module.repeat = None  # type: ignore[attr-defined]  # imported, never called by the README model
        layers_torch.Rearrange = Rearrange  # type: ignore[attr-defined]
        sys.modules.update(
            {"einops": einops_module, "einops.layers": layers, "einops.layers.torch": layers_torch}
        )
    try:
        import torchdiffeq  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("torchdiffeq")

        def odeint_adjoint(*args: object, **kwargs: object) -> None:
            raise RuntimeError("torchdiffeq stand-in: not used by the README model")

        stand_in.odeint_adjoint = odeint_adjoint  # type: ignore[attr-defined]
        sys.modules["torchdiffeq"] = stand_in
    # Their animate.py (home of normalize_kp) imports the training data and logging modules at the top.
    for name, attributes in (("frames_dataset", ("PairedDataset",)), ("logger", ("Logger", "Visualizer"))):
        if name not in sys.modules:
            module = types.ModuleType(name)
            for attribute in attributes:
                setattr(module, attribute, None)
            sys.modules[name] = module


def load_reference(
    reference_dir: str, checkpoint: str
) -> tuple[torch.nn.Module, torch.nn.Module, Callable[..., Any]]:
    """The authors' networks as their demo builds them (README flags), with our checkpoint loaded strictly."""
    import yaml

    _install_reference_shims()
    sys.path.insert(0, str(Path(reference_dir).resolve()))
    import modules.generator as reference_generators
    from animate import normalize_kp
    from modules.keypoint_detector import KPDetector

    config = yaml.safe_load((Path(reference_dir) / "config" / "vox-256.yaml").read_text())
    params = config["model_params"]
    params["common_params"]["num_kp"] = 15  # --kp_num 15
    generator = reference_generators.Unet_Generator_keypoint_aware(
        **params["generator_params"],
        **params["common_params"],
        mbunit="ExpendMemoryUnit",
        mb_spatial=32,
        mb_channel=512,
    )
    kp_detector = KPDetector(**params["kp_detector_params"], **params["common_params"])
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    generator.load_state_dict({k.replace("module.", ""): v for k, v in state["generator"].items()})
    kp_detector.load_state_dict({k.replace("module.", ""): v for k, v in state["kp_detector"].items()})
    return generator.eval(), kp_detector.eval(), normalize_kp


def run_authors(
    generator: torch.nn.Module,
    kp_detector: torch.nn.Module,
    normalize_kp: Callable[..., Any],
    source: torch.Tensor,
    driving: list[torch.Tensor],
) -> Iterator[np.ndarray]:
    """Their demo's `make_animation`, as written: NHWC arrays permuted to NCHW, a host copy per frame.

    Noise comes from torch's global generator (their `new_empty().normal_()`), seeded like ours.
    """
    torch.manual_seed(SEED)
    video = np.stack([frame.permute(1, 2, 0).numpy() for frame in driving])
    with torch.no_grad():
        source_t = torch.tensor(source.permute(1, 2, 0).numpy()[np.newaxis].astype(np.float32)).permute(
            0, 3, 1, 2
        )
        driving_t = torch.tensor(video[np.newaxis].astype(np.float32)).permute(0, 4, 1, 2, 3)
        kp_source = kp_detector(source_t)
        kp_driving_initial = kp_detector(driving_t[:, :, 0])
        for frame_idx in range(driving_t.shape[2]):
            kp_driving = kp_detector(driving_t[:, :, frame_idx])
            kp_norm = normalize_kp(
                kp_source=kp_source,
                kp_driving=kp_driving,
                kp_driving_initial=kp_driving_initial,
                use_relative_movement=True,
                use_relative_jacobian=True,
                adapt_movement_scale=True,
            )
            out = generator(source_t, kp_source=kp_source, kp_driving=kp_norm)
            yield np.transpose(out["prediction"].data.cpu().numpy(), [0, 2, 3, 1])[0]


# --------------------------------------------------------------------------- the variants


def run_baseline(model: MCNet, source: torch.Tensor, driving: list[torch.Tensor]) -> Iterator[np.ndarray]:
    """The authors' demo loop with our modules: kp(source) and kp(driving[0]) once, then per frame kp + generator.

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


def run_ours(
    model: MCNet, source: torch.Tensor, driving: list[torch.Tensor], variant: Variant
) -> Iterator[np.ndarray]:
    stream = animate(
        model, source, iter(driving), seed=SEED, batch_size=variant.batch_size, mode=variant.mode
    )
    for frame in stream:
        yield frame.permute(1, 2, 0).float().cpu().numpy()


def steady_state(arrivals: list[float], start: float, batch: int) -> tuple[float, float]:
    """(median, min) seconds per frame between batch completions, the first batch (per-job work) excluded."""
    ends = [start] + [arrivals[i] for i in range(batch - 1, len(arrivals), batch)]
    per_frame = [(b - a) / batch for a, b in zip(ends[1:], ends[2:], strict=False)]
    if not per_frame:
        return math.nan, math.nan
    return float(np.median(per_frame)), float(min(per_frame))


@dataclass
class Job:
    """What a worker process needs (picklable)."""

    checkpoint: str
    model: str
    reference_dir: str | None
    frames: int
    out_path: str


def _worker(
    job: Job, variant: Variant, barrier: multiprocessing.synchronize.Barrier, queue: Queue[Measurement]
) -> None:
    source: torch.Tensor  # bound below, before the first `run` call the lambdas make
    torch.set_num_threads(variant.threads)
    device = torch.device(variant.device)
    if variant.kind == "authors":
        assert job.reference_dir is not None
        generator, kp_detector, normalize_kp = load_reference(job.reference_dir, job.checkpoint)
        size = 256
        run = lambda d: run_authors(generator, kp_detector, normalize_kp, source, d)  # noqa: E731
    else:
        model = load_mcnet(job.checkpoint, device=device).model
        size = model.config.image_size
        if variant.kind == "baseline":
            set_fused_kernels(model, False)  # the authors' arithmetic, op for op
            if variant.allocator:
                retain_freed_memory()
        elif device.type == "cpu":
            retain_freed_memory()  # what PortraitAnimator does on CPU
        if variant.kind == "ours" and variant.mode == "fast":
            low = torch.bfloat16 if variant.force_bf16 else fast_dtype(device)
            if low is not None:
                use_low_precision(model, low)  # what PortraitAnimator does in fast mode
        if variant.kind == "ours" and variant.channels_last:
            use_channels_last(model)
        run = (
            (lambda d: run_baseline(model, source, d))
            if variant.kind == "baseline"
            # noqa: E731
            else (lambda d: run_ours(model, source, d, variant))
        )
    source, driving = inputs_for(job.model, job.frames, size)
    list(run(driving[:1]))  # warm-up: oneDNN primitive creation, allocator
    if device.type == "cuda":
        torch.cuda.synchronize()
    barrier.wait()  # workers in flight together start their timed run together
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
    np.save(job.out_path, np.stack(outputs))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        Measurement(
            variant, job.frames, seconds, job.frames / seconds, cpu_seconds, median, best, rss, job.out_path
        )
    )


def measure(job: Job, variant: Variant) -> Measurement:
    """Run one variant in fresh processes (`in_flight` of them at once), each with its own peak RSS.

    With several in flight, each renders the whole clip; frames/s is their total over the slowest one's
    time, CPU time and peak RSS are summed (the memory a pool of that many workers needs).
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    barrier = context.Barrier(variant.in_flight)
    processes = []
    for index in range(variant.in_flight):
        worker_job = replace(job, out_path=job.out_path.replace(".npy", f"-w{index}.npy"))
        process = context.Process(target=_worker, args=(worker_job, variant, barrier, queue))
        process.start()
        processes.append(process)
    results: list[Measurement] = []
    while len(results) < len(processes):
        try:
            results.append(queue.get(timeout=5))
        except Exception:  # queue.Empty: a worker that died never reports
            if not any(p.is_alive() for p in processes) and queue.empty():
                raise RuntimeError(
                    f"variant {variant.name}: a worker process died (see its traceback above)"
                ) from None
    for process in processes:
        process.join()
    slowest = max(r.seconds for r in results)
    frames = sum(r.frames for r in results)
    return Measurement(
        variant,
        frames,
        slowest,
        frames / slowest,
        sum(r.cpu_seconds for r in results),
        max(r.steady_s_per_frame_median for r in results) / variant.in_flight,
        max(r.steady_s_per_frame_min for r in results) / variant.in_flight,
        sum(r.peak_rss_mb for r in results),
        results[0].frames_path,
    )


# --------------------------------------------------------------------------- ceilings and FLOPs


def _best_time(fn: Callable[[], object], repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ceilings() -> dict[str, float]:
    """GFLOP/s of a 2048^3 matmul and a 512->512 3x3 conv at 64x64 (channels-last), fp32, bf16 and fp16."""
    results = {}
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        a = torch.randn(2048, 2048, dtype=dtype)
        b = torch.randn(2048, 2048, dtype=dtype)
        results[f"matmul_2048_{str(dtype)[6:]}"] = 2 * 2048**3 / _best_time(lambda: a @ b) / 1e9  # noqa: B023
        x = torch.randn(1, 512, 64, 64, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(512, 512, 3, 3, dtype=dtype).contiguous(memory_format=torch.channels_last)
        flops = 2 * 512 * 512 * 9 * 64 * 64
        with torch.no_grad():
            results[f"conv3x3_512_{str(dtype)[6:]}"] = (
                flops / _best_time(lambda: torch.nn.functional.conv2d(x, w, padding=1), repeats=3) / 1e9  # noqa: B023
            )
    return results


def flops_per_frame(checkpoint: str, model_name: str, frames: int) -> dict[str, float]:
    """FLOPs (2 per MAC) of one baseline frame (reference arithmetic) and of ours (fused kernels, source
    work once per job, amortised over `frames`)."""
    model = load_mcnet(checkpoint).model.requires_grad_(False)  # FlopCounterMode's module hooks need this
    source, driving = inputs_for(model_name, 1, model.config.image_size)

    def count(fn: Callable[[], object]) -> float:
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
        per_frame = count(
            lambda: model.generator(src, model.kp_detector(frame), kp_source, rng=rng, encoding=encoding)
        )
    return {
        "baseline_gflop_per_frame": baseline / 1e9,
        "source_work_gflop_per_job": per_job / 1e9,
        "ours_gflop_per_frame": (per_frame + per_job / frames) / 1e9,
    }


# --------------------------------------------------------------------------- main


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def variants(device: str, threads: list[int], explore: bool, authors: bool) -> list[Variant]:
    """The authors' loop (when available), our imitation of it, then ours exact and fast per thread count."""
    chosen = []
    for count in threads:  # the reference loops at every thread count, so each ratio compares like with like
        if authors and device == "cpu":  # their demo's CPU path; on CUDA our imitation is the reference
            chosen.append(Variant(f"{device}-authors-t{count}", "authors", 1, "exact", device, threads=count))
        chosen.append(Variant(f"{device}-baseline-t{count}", "baseline", 1, "exact", device, threads=count))
    batch = 8 if device == "cuda" else 1  # the PortraitAnimator defaults
    nhwc = device == "cuda"
    has_fast = fast_dtype(torch.device(device)) is not None
    for count in threads:
        chosen.append(
            Variant(
                f"{device}-exact-t{count}", "ours", batch, "exact", device, threads=count, channels_last=False
            )
        )
        chosen.append(
            Variant(
                f"{device}-fast-t{count}",
                "ours",
                batch,
                "fast",
                device,
                threads=count,
                channels_last=nhwc and has_fast,
            )
        )
    if device == "cpu" and max(threads) > 1:
        for mode in ("exact", "fast"):
            chosen.append(
                Variant(f"cpu-{mode}-2x1-in-flight", "ours", 1, mode, device, threads=1, in_flight=2)
            )
    if explore:
        if device == "cpu":
            chosen.append(
                Variant(
                    f"cpu-baseline-allocator-t{min(threads)}",
                    "baseline",
                    1,
                    "exact",
                    device,
                    threads=min(threads),
                    allocator=True,
                )
            )
        # bf16 where the CPU has only AVX512-BF16 (fast mode falls back to exact there): measured, not used.
        for count in threads:
            chosen.append(
                Variant(
                    f"{device}-fast-bf16-forced-t{count}",
                    "ours",
                    1,
                    "fast",
                    device,
                    threads=count,
                    force_bf16=True,
                )
            )
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4, help="driving frames per variant and round")
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds; the (lower) median round is reported"
    )
    parser.add_argument(
        "--threads", default="2", help="intra-op thread counts to measure ours with, e.g. 1,2"
    )
    parser.add_argument("--model", choices=("vox256", "demo"), default="vox256")
    parser.add_argument(
        "--reference-dir",
        default=os.environ.get(REFERENCE_ENV),
        help=f"a checkout of harlanhong/ICCV2023-MCNET (default: ${REFERENCE_ENV})",
    )
    parser.add_argument(
        "--explore",
        action="store_true",
        help="also: baseline with our allocator, bf16 forced where fast mode declines it",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated variant names to keep (include the reference ones)"
    )
    parser.add_argument("--skip-ceilings", action="store_true")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(max(threads))
    console = Console(width=220)
    report: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_amx": cpu_has_amx(),
            "cpu_fast_dtype": str(fast_dtype(torch.device("cpu"))),
        },
        "model": args.model,
        "frames": args.frames,
        "rounds": args.rounds,
        "threads": threads,
        "load_average_before": list(os.getloadavg()),
    }
    console.print(
        f"CPU: {report['machine']['cpu_capability']}, AMX {'yes' if cpu_has_amx() else 'no'}; "
        f"fast mode dtype on CPU: {report['machine']['cpu_fast_dtype']}"
    )
    if not args.skip_ceilings:
        report["ceilings_gflops"] = ceilings()
        table = Table(title=f"CPU ceilings (GFLOP/s, {max(threads)} threads)")
        table.add_column("kernel")
        table.add_column("GFLOP/s", justify="right")
        for name, value in report["ceilings_gflops"].items():
            table.add_row(name, f"{value:.0f}")
        console.print(table)

    with tempfile.TemporaryDirectory(prefix="bench-animate-") as tmp:
        if args.model == "demo":
            checkpoint = str(DEMO_CHECKPOINT)
        else:
            checkpoint = str(Path(tmp) / "vox256-random.pth.tar")
            build_checkpoint(Path(checkpoint))
        config = load_mcnet(checkpoint).config
        problem = reference_problem(args.reference_dir, config)
        report["authors_code"] = {"dir": args.reference_dir, "skipped": problem}
        if problem:
            console.print(f"[yellow]authors' code column skipped: {problem}[/]")
        report["flops"] = flops_per_frame(checkpoint, args.model, args.frames)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        if not torch.cuda.is_available():
            console.print("[yellow]CUDA is not available on this machine: the CUDA variants are skipped.[/]")
        rows = []
        for device in devices:
            chosen = variants(device, threads, args.explore, authors=problem is None)
            if args.only:
                keep = set(args.only.split(","))
                chosen = [v for v in chosen if v.name in keep]
            rounds: dict[str, list[Measurement]] = {v.name: [] for v in chosen}
            for round_index in range(args.rounds):
                order = chosen if round_index % 2 == 0 else chosen[::-1]  # interleaved, alternating order
                for v in order:
                    job = Job(
                        checkpoint,
                        args.model,
                        args.reference_dir,
                        args.frames,
                        str(Path(tmp) / f"{v.name}-r{round_index}.npy"),
                    )
                    rounds[v.name].append(measure(job, v))
                    console.print(
                        f"round {round_index + 1}/{args.rounds} {v.name}: "
                        f"{rounds[v.name][-1].seconds / rounds[v.name][-1].frames * v.in_flight:.2f} s/frame"
                    )
            # The (lower) median round: the faster of two, the middle of three.
            measured = [
                sorted(rounds[v.name], key=lambda m: m.seconds)[(len(rounds[v.name]) - 1) // 2]
                for v in chosen
            ]
            kind = "authors" if any(m.variant.kind == "authors" for m in measured) else "baseline"
            references = {
                m.variant.threads: m for m in measured if m.variant.kind == kind and m.variant.in_flight == 1
            }
            references = references or {
                measured[0].variant.threads: measured[0]
            }  # --only left no reference loop
            exact = next(
                (m for m in measured if m.variant.kind == "ours" and m.variant.mode == "exact"), measured[0]
            )
            exact_frames = np.load(exact.frames_path)
            for m in measured:
                # The reference loop at the same thread count (pools of single-thread workers: the 1-thread one).
                reference = references.get(m.variant.threads, next(iter(references.values())))
                reference_frames = np.load(reference.frames_path)
                frames = np.load(m.frames_path)
                # CPU time is what the variant consumed: on a shared machine it is steadier than wall time.
                cpu_s_per_frame = m.cpu_seconds / m.frames
                ref_cpu = reference.cpu_seconds / reference.frames
                rows.append(
                    {
                        **asdict(m.variant),
                        "frames": m.frames,
                        "seconds": m.seconds,
                        "s_per_frame": 1 / m.fps,
                        "fps": m.fps,
                        "rounds_s_per_frame": [
                            r.seconds / r.frames * m.variant.in_flight for r in rounds[m.variant.name]
                        ],
                        "cpu_seconds": m.cpu_seconds,
                        "cpu_s_per_frame": cpu_s_per_frame,
                        "steady_s_per_frame_median": m.steady_s_per_frame_median,
                        "steady_s_per_frame_min": m.steady_s_per_frame_min,
                        "speedup_vs_reference": m.fps / reference.fps,
                        "speedup_vs_reference_cpu_time": ref_cpu / cpu_s_per_frame,
                        "reference": reference.variant.name,
                        "gflops_achieved": report["flops"][
                            "baseline_gflop_per_frame" if m.variant.kind != "ours" else "ours_gflop_per_frame"
                        ]
                        * m.fps,
                        "peak_rss_mb": m.peak_rss_mb,
                        "max_abs_diff_vs_reference": float(np.abs(frames - reference_frames).max()),
                        "max_abs_diff_vs_exact": float(np.abs(frames - exact_frames).max()),
                        "psnr_vs_exact_db": psnr(frames, exact_frames),
                    }
                )
    report["results"] = rows
    report["load_average_after"] = list(os.getloadavg())
    reference_name = (
        "the authors' loop" if problem is None else "our imitation of the authors' loop (baseline)"
    )
    table = Table(
        title=f"MCNet {args.model}, {config.image_size}x{config.image_size}, {args.frames} frames x "
        f"{args.rounds} interleaved rounds (median round); ratios against {reference_name} "
        "at the same thread count"
    )
    for column in (
        "variant",
        "threads",
        "s/frame",
        "rounds s/frame",
        "vs ref",
        "CPU s/frame",
        "vs ref (CPU)",
        "steady min",
        "GFLOP/s",
        "peak RSS MB",
        "max|diff| vs ref",
        "PSNR vs exact dB",
    ):
        table.add_column(column, justify="right" if column != "variant" else "left")
    for row in rows:
        flight = f"{row['in_flight']}x{row['threads']}" if row["in_flight"] > 1 else str(row["threads"])
        table.add_row(
            row["name"],
            flight,
            f"{row['s_per_frame']:.3f}",
            " ".join(f"{t:.2f}" for t in row["rounds_s_per_frame"]),
            f"{row['speedup_vs_reference']:.2f}x",
            f"{row['cpu_s_per_frame']:.2f}",
            f"{row['speedup_vs_reference_cpu_time']:.2f}x",
            f"{row['steady_s_per_frame_min']:.2f}",
            f"{row['gflops_achieved']:.0f}",
            f"{row['peak_rss_mb']:.0f}",
            f"{row['max_abs_diff_vs_reference']:.2e}",
            f"{row['psnr_vs_exact_db']:.1f}",
        )
    console.print(table)
    flops = report["flops"]
    console.print(
        f"GFLOP per frame: reference arithmetic {flops['baseline_gflop_per_frame']:.1f}, ours "
        f"{flops['ours_gflop_per_frame']:.1f} (source work {flops['source_work_gflop_per_job']:.1f} once per job)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"animate-{args.model}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=1))
    console.print(
        f"load average before/after: {report['load_average_before']} / {report['load_average_after']}"
    )
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
