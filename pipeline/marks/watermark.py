"""The invisible mark: a 32-bit publication id in every frame, read back by a vote across frames.

Method (measured in `bench/publish.py`, reasons in `docs/publishing.md`): invisible-watermark's
DWT-DCT-SVD on the U (chroma) plane with 8x8 blocks and quantisation step 140, which after an H.264
crf 28 re-encode, even at half size, still reads the word once the bit scores of many frames are
averaged. The 32-bit payload
travels inside a 56-bit word with a 24-bit CRC: an unmarked video fails the CRC and reads as unmarked
(None), not as a random id. Decoding tries the word as voted, then with up to 4 of the least certain
bits flipped (16 candidates), so a few weak bits after heavy re-encoding do not lose the mark; the
CRC keeps the false-positive rate near 16 / 2**24 (one in a million) per video.

The mark is made on a canonical 256x256 copy of each frame (invisible-watermark needs 256x256 at
least) and the difference is scaled back to the frame's own size; reading resizes any frame to 256x256
first. A copy scaled to half size (128x128) is therefore upscaled before decoding and still reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pywt
from imwatermark.dwtDctSvd import EmbedDwtDctSvd

from pipeline.errors import InputError, PipelineError
from pipeline.video import reader as video

logger = logging.getLogger(__name__)

METHOD = "dwtDctSvd"
PAYLOAD_BITS = 32
CRC_BITS = 24
WORD_BITS = PAYLOAD_BITS + CRC_BITS
CANONICAL = 256  # frames are marked and read at 256x256
BLOCK = 8
STEP = 140
CHANNEL = 1  # U plane of YUV
MAX_FLIPS = 4
_CRC_POLY = 0x864CFB  # CRC-24/OpenPGP
_CRC_INIT = 0xB704CE


class WatermarkError(PipelineError):
    """Embedding or reading failed in ffmpeg; the message carries the tail of its stderr."""


@dataclass(frozen=True)
class WatermarkReading:
    """The result of reading a video: the payload (None if unmarked) and how sure the vote was.

    `margin` is the mean distance of the voted bit scores from 0.5 (0 = coin flips, 0.5 = unanimous);
    `flipped` is how many weak bits the decoder had to flip to satisfy the CRC.
    """

    payload: int | None
    frames_read: int
    margin: float
    flipped: int
    bits: tuple[int, ...]


def crc24(bits: list[int] | tuple[int, ...]) -> int:
    """CRC-24 (OpenPGP polynomial and init) over a sequence of bits, most significant first."""
    crc = _CRC_INIT
    for bit in bits:
        top = ((crc >> 23) & 1) ^ (bit & 1)
        crc = (crc << 1) & 0xFFFFFF
        if top:
            crc ^= _CRC_POLY
    return crc


def _int_bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def encode_word(payload: int) -> list[int]:
    """The 56 bits that carry `payload`: 32 payload bits then their CRC-24."""
    if not 0 <= payload < 2**PAYLOAD_BITS:
        raise ValueError(f"`payload` must be an unsigned 32-bit integer, got {payload}")
    bits = _int_bits(payload, PAYLOAD_BITS)
    return bits + _int_bits(crc24(bits), CRC_BITS)


def _check_word(bits: list[int]) -> int | None:
    payload_bits, crc_bits = bits[:PAYLOAD_BITS], bits[PAYLOAD_BITS:]
    if crc24(payload_bits) != int("".join(map(str, crc_bits)), 2):
        return None
    return int("".join(map(str, payload_bits)), 2)


def decode_scores(scores: np.ndarray) -> tuple[int | None, int]:
    """Turn averaged bit scores (0..1, 56 of them) into (payload or None, bits flipped).

    The hard decision is tried first, then flips of the 1..4 least certain bits.
    """
    if scores.shape != (WORD_BITS,):
        raise ValueError(f"`scores` must have shape ({WORD_BITS},), got {scores.shape}")
    hard = [int(s > 0.5) for s in scores]
    weakest = [int(i) for i in np.argsort(np.abs(scores - 0.5))[:MAX_FLIPS]]
    for count in range(MAX_FLIPS + 1):
        for flips in combinations(weakest, count):
            candidate = hard.copy()
            for index in flips:
                candidate[index] ^= 1
            payload = _check_word(candidate)
            if payload is not None:
                return payload, count
    return None, 0


def _embedder(bits: list[int]) -> EmbedDwtDctSvd:
    scales = [0, 0, 0]
    scales[CHANNEL] = STEP
    return EmbedDwtDctSvd(bits, wmLen=WORD_BITS, scales=scales, block=BLOCK)


def mark_frame(frame: np.ndarray, bits: list[int]) -> np.ndarray:
    """Mark one RGB uint8 frame (HxWx3, any size) with the 56-bit word; returns a new frame."""
    height, width = frame.shape[:2]
    embedder = _embedder(bits)
    if (height, width) == (CANONICAL, CANONICAL):
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        return cv2.cvtColor(embedder.encode(bgr), cv2.COLOR_BGR2RGB)
    small = cv2.resize(frame, (CANONICAL, CANONICAL), interpolation=cv2.INTER_AREA)
    marked = cv2.cvtColor(embedder.encode(cv2.cvtColor(small, cv2.COLOR_RGB2BGR)), cv2.COLOR_BGR2RGB)
    delta = marked.astype(np.float32) - small.astype(np.float32)
    delta = cv2.resize(delta, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(frame.astype(np.float32) + delta, 0, 255).round().astype(np.uint8)


def frame_scores(frame: np.ndarray) -> np.ndarray:
    """Per-bit scores (fraction of blocks voting 1) of one RGB frame, after resizing to 256x256."""
    if frame.shape[:2] != (CANONICAL, CANONICAL):
        shrink = frame.shape[0] > CANONICAL and frame.shape[1] > CANONICAL
        frame = cv2.resize(
            frame, (CANONICAL, CANONICAL), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
        )
    yuv = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2YUV)
    approx, _details = pywt.dwt2(yuv[:, :, CHANNEL], "haar")
    votes = _embedder([]).decode_frame(approx, STEP, [[] for _ in range(WORD_BITS)])
    return np.array([np.mean(v) for v in votes], dtype=np.float64)


# -- video in and out --------------------------------------------------------------------------------


def embed(src: Path, dest: Path, payload: int, *, crf: int = 20) -> Path:
    """Write `dest`: every frame of `src` marked with `payload`, H.264 yuv420p +faststart, audio kept.

    Raises:
        ValueError: `payload` is not an unsigned 32-bit integer.
        InputError: `src` is not a readable video (see `pipeline.video.reader`) or is smaller than 64x64.
        WatermarkError: encoding failed; `dest` is not left behind.
    """
    src, dest = Path(src), Path(dest)
    bits = encode_word(payload)
    info = video.probe(src)
    if min(info.width, info.height) < 64:
        raise InputError(f"{src.name} is {info.width}x{info.height}; the watermark needs at least 64x64")
    count = 0
    try:
        with video.VideoWriter(
            dest, fps=info.fps, size=(info.width, info.height), audio_from=src, crf=crf, preset="veryfast"
        ) as writer:
            for frame in video.iter_frames(src, info=info):
                writer.write(mark_frame(frame, bits))
                count += 1
    except video.VideoEncodeError as exc:
        raise WatermarkError(f"watermarking {src.name} failed after {count} frames: {exc}") from None
    logger.info("watermarked %d frames of %s", count, dest.name)
    return dest


def read(path: Path, *, max_frames: int = 96) -> WatermarkReading:
    """Read the mark of a video: average the bit scores of up to `max_frames` evenly spaced frames.

    Raises:
        InputError: not a readable video.
    """
    path = Path(path)
    info = video.probe(path)
    step = max(1, info.frame_count // max_frames)
    scores: list[np.ndarray] = []
    for index, frame in enumerate(video.iter_frames(path, info=info)):
        if index % step == 0 and len(scores) < max_frames:
            scores.append(frame_scores(frame))
    if not scores:
        return WatermarkReading(None, 0, 0.0, 0, ())
    mean = np.mean(scores, axis=0)
    payload, flipped = decode_scores(mean)
    hard = tuple(int(s > 0.5) for s in mean)
    return WatermarkReading(payload, len(scores), float(np.mean(np.abs(mean - 0.5))), flipped, hard)


def extract(path: Path) -> int | None:
    """The 32-bit payload of a marked video, or None when the video carries no (readable) mark."""
    return read(path).payload
