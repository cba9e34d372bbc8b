"""Benchmark of the publishing steps on a 10-second 256x256 clip, and of the two watermark methods.

Per step: label (ffmpeg drawtext), watermark (embed + read back), C2PA sign, upload to a real local
SeaweedFS (with read-back verification). Then bit accuracy after re-encoding (H.264 crf 28, and crf 28
at half size) for the chosen method (dwtDctSvd, U plane, 8x8 blocks, step 140, 56-bit word, vote over
frames) and for rivaGan (32 bits, vote over frames; measured on a subset of frames because it costs
about half a second per frame on CPU). Prints a table and writes bench/results/publish.json.

Run: `.venv/bin/python -m bench.publish [--seconds 10] [--rivagan-frames 32]`
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from models.digest import sha256_file
from pipeline.marks import provenance, watermark
from pipeline.marks.label import burn_label
from pipeline.storage.local_s3 import LocalS3Server
from pipeline.storage.objects import ObjectStore, object_key
from pipeline.training.frames import decode_video
from pipeline.video.reader import VideoWriter, iter_frames

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / ".." / "shared" / "media" / "talking_man_320x240_15s.mov"
RESULTS = ROOT / "bench" / "results"
PAYLOAD = 0x5EED1234
FPS = 25


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-nostdin", "-y", *args], check=True)


def frames_of(path: Path, size: int | None = 256) -> np.ndarray:
    """Every frame of a video as RGB arrays, resized to `size` (None: as stored), by the product's reader."""
    return np.stack(list(iter_frames(path, size=size)))


def write_frames(frames: np.ndarray, path: Path, *, crf: int = 20, fps: int = FPS) -> Path:
    """H.264 yuv420p through the product's writer (`pipeline.video.writer.VideoWriter`)."""
    h, w = frames.shape[1:3]
    with VideoWriter(path, fps=fps, size=(w, h), crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def attacks(marked: Path, work: Path) -> dict[str, Path]:
    """The copies a re-upload produces: crf 28, and crf 28 at half size."""
    crf28, half = work / f"{marked.stem}-crf28.mp4", work / f"{marked.stem}-half.mp4"
    ffmpeg("-i", str(marked), "-c:v", "libx264", "-crf", "28", str(crf28))
    ffmpeg("-i", str(marked), "-vf", "scale=iw/2:ih/2", "-c:v", "libx264", "-crf", "28", str(half))
    return {"crf28": crf28, "crf28_half_size": half}


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def dwt_accuracy(path: Path, bits: np.ndarray) -> dict[str, Any]:
    scores = np.array(
        [watermark.frame_scores(f) for f in frames_of(path, size=None)]
    )  # resized as `read` does
    per_frame = float(((scores > 0.5) == bits).mean())
    voted = float(((scores.mean(0) > 0.5) == bits).mean())
    payload, flipped = watermark.decode_scores(scores.mean(0))
    return {
        "per_frame_bit_accuracy": per_frame,
        "voted_bit_accuracy": voted,
        "decoded": payload == PAYLOAD,
        "decoded_payload": payload,
        "flipped_bits": flipped,
        "frames": len(scores),
    }


def bench_rivagan(clip: Path, work: Path, n_frames: int) -> dict[str, Any]:
    """rivaGan (ONNX models shipped in the invisible-watermark wheel; offline), on the first n frames."""
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    WatermarkEncoder.loadModel()
    bits = [int(b) for b in watermark.encode_word(PAYLOAD)[:32]]
    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", bits)
    decoder = WatermarkDecoder("bits", 32)
    frames = frames_of(clip)[:n_frames]
    start = time.perf_counter()
    marked = np.stack(
        [
            cv2.cvtColor(encoder.encode(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), "rivaGan"), cv2.COLOR_BGR2RGB)
            for f in frames
        ]
    )
    embed_s = (time.perf_counter() - start) / len(frames)
    path = work / "rivagan.mp4"
    write_frames(marked, path)
    out: dict[str, Any] = {
        "frames": len(frames),
        "embed_s_per_frame": embed_s,
        "payload_bits": 32,
        "room_for_error_detection": "none (rivaGan carries exactly 32 bits)",
    }
    truth = np.array(bits)
    for name, attacked in {"marked": path, **attacks(path, work)}.items():
        start = time.perf_counter()
        decoded = np.array(
            [decoder.decode(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), "rivaGan") for f in frames_of(attacked)],
            dtype=float,
        )
        out["decode_s_per_frame"] = (time.perf_counter() - start) / len(decoded)
        out[name] = {
            "per_frame_bit_accuracy": float((decoded == truth).mean()),
            "voted_bit_accuracy": float(((decoded.mean(0) > 0.5) == truth).mean()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rivagan-frames", type=int, default=32)
    args = parser.parse_args()
    console = Console()
    results: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "seconds": args.seconds}
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        work = Path(tmp)
        clip = work / "clip.mp4"
        # The source's centre square at 256x256, as the training frames are cut (25 fps, no audio).
        write_frames(decode_video(SOURCE, size=256, max_frames=round(args.seconds * FPS)), clip, crf=18)
        steps: dict[str, float] = {}
        labelled, steps["label"] = timed(burn_label, clip, work / "labelled.mp4")
        marked, steps["watermark_embed"] = timed(watermark.embed, labelled, work / "marked.mp4", PAYLOAD)
        reading, steps["watermark_read"] = timed(watermark.read, marked)
        assert reading.payload == PAYLOAD, "the marked clip did not read back"
        identity = provenance.ensure_dev_identity(work / "signing")
        claims = provenance.ProvenanceClaims(
            title="video.mp4",
            job_id="bench",
            publication_id="bench",
            consent_id="bench",
            consent_version=1,
            model_name="mcnet",
            model_sha256="0" * 64,
            watermark_payload=PAYLOAD,
            watermark_method=watermark.METHOD,
            ingredients=(provenance.Ingredient(clip, sha256_file(clip), "driving video"),),
        )
        signed, steps["c2pa_sign"] = timed(
            provenance.sign_video, marked, work / "video.mp4", identity=identity, claims=claims
        )
        server = LocalS3Server(work / "s3", access_key="bench", secret_key="bench-secret-0123")
        state = server.start()
        try:
            store = ObjectStore(
                state.endpoint, access_key="bench", secret_key="bench-secret-0123", bucket_prefix="bench"
            )
            store.ensure_buckets()
            key = object_key("00000000-0000-4000-8000-000000000000", "video.mp4")
            _stored, steps["upload_verified"] = timed(store.put_file, "published", key, signed)
        finally:
            server.stop()
        results["steps_s"] = steps
        results["frames"] = len(frames_of(labelled))
        results["frames_sampled_by_read"] = reading.frames_read
        bits = np.array(watermark.encode_word(PAYLOAD))
        accuracy: dict[str, Any] = {"marked": dwt_accuracy(marked, bits)}
        for name, attacked in attacks(marked, work).items():
            accuracy[name] = dwt_accuracy(attacked, bits)
        unmarked = watermark.read(clip)
        accuracy["unmarked_decoded"] = unmarked.payload
        one = frames_of(labelled)[0]
        _m, embed_one = timed(watermark.mark_frame, one, list(bits))
        _s, read_one = timed(watermark.frame_scores, one)
        a, b = frames_of(labelled).astype(float), frames_of(marked).astype(float)
        results["dwtDctSvd"] = {
            "config": {
                "channel": "U",
                "block": watermark.BLOCK,
                "step": watermark.STEP,
                "word_bits": watermark.WORD_BITS,
                "crc_bits": watermark.CRC_BITS,
            },
            "embed_s_per_frame": embed_one,
            "decode_s_per_frame": read_one,
            "psnr_db": float(10 * np.log10(255**2 / np.mean((a - b) ** 2))),
            **accuracy,
        }
        results["rivaGan"] = bench_rivagan(labelled, work, args.rivagan_frames)

    table = Table(
        title=f"publishing a {args.seconds:.0f} s 256x256 clip ({results['frames']} frames; "
        f"read samples {results['frames_sampled_by_read']})"
    )
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for name, seconds in steps.items():
        table.add_row(name, f"{seconds:.2f}")
    console.print(table)
    wm = Table(title="watermark bit accuracy (per frame / voted across frames)")
    for column in (
        "method",
        "embed s/frame",
        "decode s/frame",
        "marked",
        "crf 28",
        "crf 28 half size",
        "decoded?",
    ):
        wm.add_column(column)
    d, r = results["dwtDctSvd"], results["rivaGan"]

    def cell(x: dict[str, Any]) -> str:
        return f"{x['per_frame_bit_accuracy']:.3f} / {x['voted_bit_accuracy']:.3f}"

    wm.add_row(
        "dwtDctSvd (56-bit word)",
        f"{d['embed_s_per_frame']:.3f}",
        f"{d['decode_s_per_frame']:.3f}",
        cell(d["marked"]),
        cell(d["crf28"]),
        cell(d["crf28_half_size"]),
        f"{d['crf28']['decoded']} / {d['crf28_half_size']['decoded']}; unmarked -> {d['unmarked_decoded']}",
    )
    wm.add_row(
        f"rivaGan (32 bits, {r['frames']} frames)",
        f"{r['embed_s_per_frame']:.3f}",
        f"{r['decode_s_per_frame']:.3f}",
        cell(r["marked"]),
        cell(r["crf28"]),
        cell(r["crf28_half_size"]),
        "no room for a CRC",
    )
    console.print(wm)
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / "publish.json"
    target.write_text(json.dumps(results, indent=2, default=str))
    console.print(f"wrote {target}")


if __name__ == "__main__":
    main()
