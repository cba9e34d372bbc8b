"""68-point facial landmarks with dlib's shape predictor, fully offline, safe to share between threads.

The predictor file (`shape_predictor_68_face_landmarks.dat`, iBUG 300-W annotation) ships in the
`face-recognition-models` wheel, already installed for deepface's Dlib weights; nothing is downloaded.
Every result records the file name and its sha256 (`LandmarkModel`), so a motion score can be re-read
against the exact predictor that produced it.

One `LandmarkDetector` per process is enough (`shared_detector()`): loading the 100 MB predictor takes
about a second. dlib is not thread-safe, and not only within one object: a dlib call in one thread while
another runs deepface's dlib detector or embedding crashed the process. So every call here holds
`pipeline.faces.detection.DEEPFACE_LOCK`, the one lock for all dlib calls in the process (the calls are
milliseconds; a worker's threads queue briefly rather than each holding another 100 MB copy).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.digest import sha256_file
from pipeline.faces.detection import DEEPFACE_LOCK
from pipeline.faces.weights import weights_source

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
# Detection runs on a copy scaled down to at most this side (as face tracking does); landmarks on full size.
DETECT_MAX_SIDE = 480
POINTS = 68


@dataclass(frozen=True)
class LandmarkModel:
    """Which predictor produced the landmarks: recorded with every motion result."""

    name: str
    file: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        """Plain data for check results and the audit log."""
        return {"name": self.name, "file": self.file, "sha256": self.sha256}


def predictor_path() -> Path:
    """The 68-point predictor inside the installed `face-recognition-models` package."""
    path = weights_source() / PREDICTOR_FILE
    if not path.is_file():
        from pipeline.faces.weights import DeepfaceWeightsError

        raise DeepfaceWeightsError(f"face-recognition-models lacks {PREDICTOR_FILE} at {path.parent}")
    return path


@functools.lru_cache(maxsize=4)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def _cached_sha256(path: Path) -> str:
    """sha256 of the predictor file, computed once per (path, size, mtime) in this process."""
    stat = path.stat()
    return _sha256(path, stat.st_size, stat.st_mtime_ns)


class LandmarkDetector:
    """Finds the largest face in an RGB frame and its 68 landmarks (pixel coordinates, shape (68, 2)).

    Args:
        path: the predictor file; None uses the one shipped in `face-recognition-models`.
    """

    def __init__(self, path: Path | None = None) -> None:
        import dlib

        self.path = Path(path) if path is not None else predictor_path()
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(self.path))
        self._rectangle = dlib.rectangle
        self._model: LandmarkModel | None = None

    @property
    def model(self) -> LandmarkModel:
        """File name and sha256 of the predictor in use."""
        if self._model is None:
            self._model = LandmarkModel(name="dlib-68", file=self.path.name, sha256=_cached_sha256(self.path))
        return self._model

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """(68, 2) float landmarks of the largest face in an (H, W, 3) uint8 RGB image; None without a face."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}")
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        height, width = grey.shape
        factor = min(1.0, DETECT_MAX_SIDE / max(height, width))
        small = (
            grey
            if factor == 1.0
            else cv2.resize(
                grey, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA
            )
        )
        with DEEPFACE_LOCK:
            found = list(self._detector(small, 0))
            if not found and max(small.shape) <= 320:  # a face under ~80 px needs one upsampling (5x slower)
                found = list(self._detector(small, 1))
            if not found:
                return None
            best = max(found, key=lambda r: r.width() * r.height())
            box = self._rectangle(
                round(best.left() / factor),
                round(best.top() / factor),
                round(best.right() / factor),
                round(best.bottom() / factor),
            )
            shape = self._predictor(grey, box)
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(POINTS)], dtype=np.float64)

    def track(self, frames: Iterable[np.ndarray], *, every: int) -> Iterator[tuple[int, np.ndarray | None]]:
        """(index, landmarks or None) of every `every`-th frame (0, k, 2k...), streamed."""
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        for index, frame in enumerate(frames):
            if index % every == 0:
                yield index, self.landmarks(frame)


_shared: LandmarkDetector | None = None
_shared_lock = threading.Lock()


def shared_detector() -> LandmarkDetector:
    """The process's one detector (built on first use, under a lock so two threads never load it twice)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LandmarkDetector()
        return _shared
