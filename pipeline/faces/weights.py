"""deepface fully offline: its Dlib weights come from the `face-recognition-models` package, never the web.

deepface looks for weights in `$DEEPFACE_HOME/.deepface/weights/<name>` and downloads them when the file
is missing. This module fills that folder from the installed `face-recognition-models` wheel (hard link,
else symlink, else copy) under a project-controlled home, and points `DEEPFACE_HOME` at it *before*
deepface is imported (deepface creates its folder under `~` at import time). `import deepface` anywhere
in `pipeline/` goes through `deepface_module()`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import threading
from pathlib import Path
from types import ModuleType

from pipeline.errors import PermanentError

logger = logging.getLogger(__name__)

# The files deepface's Dlib recognition model and dlib detector open, by name.
DLIB_WEIGHT_FILES = ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")
_PACKAGE = "face_recognition_models"
_lock = threading.Lock()
_home: Path | None = None


class DeepfaceWeightsError(PermanentError):
    """The offline weights are not installed or cannot be placed; a set-up problem, never retried."""


def default_home() -> Path:
    """`$XDG_CACHE_HOME/likeness/deepface` (or `~/.cache/...`): outside the user's own `~/.deepface`."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "likeness" / "deepface"


def weights_source() -> Path:
    """The `models/` folder of the installed `face-recognition-models` package.

    Importing the package fails (it needs `pkg_resources`), so its folder is found from its spec.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DeepfaceWeightsError(
            f"package {_PACKAGE!r} is not installed: the offline Dlib weights are missing"
        )
    folder = Path(locations[0]) / "models"
    missing = [name for name in DLIB_WEIGHT_FILES if not (folder / name).is_file()]
    if missing:
        raise DeepfaceWeightsError(f"{_PACKAGE} at {folder} lacks {', '.join(missing)}")
    return folder


def _place(source: Path, target: Path) -> None:
    """Link (or copy) one weight file; an up-to-date target is left alone."""
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    target.unlink(missing_ok=True)
    partial = target.with_name(target.name + f".{os.getpid()}.partial")
    try:
        os.link(source, partial)
    except OSError:
        try:
            partial.symlink_to(source)
        except OSError:
            shutil.copyfile(source, partial)
    os.replace(partial, target)  # atomic: a parallel process never sees half a file


def install_weights(home: Path | None = None) -> Path:
    """Place the Dlib weights under `home` (default `default_home()`), set `DEEPFACE_HOME`; returns the home.

    Idempotent and safe to call from parallel processes. Must run before deepface is imported; once it
    has run, later calls with another home are refused, since deepface would then read two places.
    """
    global _home
    with _lock:
        wanted = Path(home or os.environ.get("LIKENESS_DEEPFACE_HOME") or default_home()).resolve()
        if _home is not None:
            if wanted != _home and home is not None:
                raise DeepfaceWeightsError(f"deepface home already set to {_home}, cannot switch to {wanted}")
            return _home
        source = weights_source()
        weights = wanted / ".deepface" / "weights"
        try:
            weights.mkdir(parents=True, exist_ok=True)
            for name in DLIB_WEIGHT_FILES:
                _place(source / name, weights / name)
        except OSError as exc:
            raise DeepfaceWeightsError(
                f"cannot place deepface weights in {weights}: {exc.strerror}"
            ) from None
        os.environ["DEEPFACE_HOME"] = str(wanted)
        _home = wanted
        logger.debug("deepface home %s (Dlib weights from %s)", wanted, source)
        return wanted


def deepface_module() -> ModuleType:
    """`deepface.DeepFace`, imported only after the offline weights are in place."""
    install_weights()
    return importlib.import_module("deepface.DeepFace")


def deepface_version() -> str:
    """The installed deepface version (recorded with every identity result)."""
    return str(importlib.import_module("deepface").__version__)
