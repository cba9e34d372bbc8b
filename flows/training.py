"""Training as the CLI runs it: prepare clips from videos (pipeline), then train or evaluate (models).

A thin composition layer, so `console/` never reaches into `models/`; no Prefect here (training is an
offline, operator-run job, not part of the governed batch). Training is governed all the same: every
clip names its subject, each subject must hold a consent covering model training before the first
step and again when the model is registered (`governance.models_registry`), the clips are stored and
registered as assets, and the checkpoint is registered with that lineage, so it may render.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.orm import Session, sessionmaker

from governance import models_registry
from governance.subjects import find_subject
from governance.uow import unit_of_work
from models.config import MCNetConfig
from models.errors import ModelError
from models.inference import resolve_device
from models.loading import load_mcnet
from models.training.clips import MANIFEST, ClipManifest, read_manifest
from models.training.dataset import evaluation_pairs
from models.training.errors import TrainingDataError
from models.training.evaluation import EvaluationReport, evaluate
from models.training.export import STORAGE_DTYPES, export_checkpoint
from models.training.presets import PRESETS, resolve_config
from models.training.trainer import StepReport, Trainer, TrainingResult, TrainingSpec
from pipeline.errors import PipelineError
from pipeline.storage.objects import ObjectStore
from pipeline.training.frames import prepare_training_data

logger = logging.getLogger(__name__)

# What the CLI turns into one-line errors: bad data, settings, checkpoints; anything else is a bug.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (ModelError, PipelineError)

__all__ = [
    "EXPECTED_ERRORS",
    "PRECISIONS",
    "PRESETS",
    "EvaluationReport",
    "Governance",
    "Registered",
    "StepReport",
    "TrainingResult",
    "TrainingSpec",
    "STORAGE_DTYPES",
    "IdentityScores",
    "evaluate_checkpoint",
    "identity_scores",
    "export_model",
    "prepare_data",
    "resolve_config",
    "check_training_consent",
    "checkpoint_identity",
    "lineage_from_data",
    "register_trained",
    "train_and_register",
    "train_model",
    "use_bf16",
]


# Decode videos / frame folders into a training data folder (see `pipeline.training.frames`); what the CLI
# calls, with the face-tracked crop as the default (the pipeline's own default is the centre crop).
prepare_data = functools.partial(prepare_training_data, crop="face")


def _data_folder(
    data: Sequence[Path],
    run_dir: Path,
    config: MCNetConfig,
    heldout_fraction: float,
    subjects: Sequence[str] | None = None,
    crop: str = "face",
) -> Path:
    """A prepared folder as given, else the run's own `data/` (prepared on first use, reused on resume)."""
    if len(data) == 1 and (Path(data[0]) / MANIFEST).is_file():
        return Path(data[0])
    prepared = run_dir / "data"
    if (prepared / MANIFEST).is_file():
        logger.info("reusing the training data prepared in %s", prepared)
        return prepared
    prepare_training_data(
        data,
        prepared,
        size=config.image_size,
        heldout_fraction=heldout_fraction,
        subjects=subjects,
        crop=crop,
    )
    return prepared


# -- governance ----------------------------------------------------------------------------------------


class UnnamedFootage(PipelineError):
    """A training clip that names no subject: nobody's consent can be checked for it."""


@dataclass(frozen=True)
class Governance:
    """What a governed training run needs: the database, the store its clips go to, who acts."""

    sessions: sessionmaker[Session]
    store: ObjectStore
    actor_email: str


@dataclass(frozen=True)
class Registered:
    """The model a training run registered."""

    model_id: str
    name: str
    version: str
    sha256: str
    clips: int
    subjects: tuple[str, ...]


def clip_subjects(session: Session, manifest: ClipManifest) -> dict[str, str]:
    """Each clip's subject id (clip name -> id); a clip without a subject reference is refused."""
    unnamed = [clip.name for clip in manifest.clips if not clip.subject]
    if unnamed:
        raise UnnamedFootage(
            f"training clip {unnamed[0]} names no subject: prepare the footage with --subject REFERENCE"
        )
    ids = {ref: find_subject(session, ref).id for ref in sorted({clip.subject for clip in manifest.clips})}
    return {clip.name: ids[clip.subject] for clip in manifest.clips}


def check_training_consent(gov: Governance, data: Path) -> tuple[str, ...]:
    """Refuse (audited) unless every subject in the prepared folder `data` may be trained on now."""
    manifest = read_manifest(Path(data))
    with unit_of_work(gov.sessions) as session:
        subjects = clip_subjects(session, manifest)
        found = models_registry.check_training_consents(
            session, subject_ids=subjects.values(), actor=gov.actor_email
        )
        return tuple(sorted(found))


def register_trained(
    gov: Governance,
    data: Path,
    checkpoint: Path,
    *,
    name: str,
    version: str,
    description: str = "",
) -> Registered:
    """Store the clips (content-addressed), register them as assets and the checkpoint with its lineage.

    The training consents are checked again at registration: a consent revoked while the model trained
    leaves it unregistered (so it cannot render).
    """
    sha256, config = checkpoint_identity(checkpoint)
    check_training_consent(gov, data)
    clips = lineage_from_data(gov, data)
    with unit_of_work(gov.sessions) as session:
        model = models_registry.register_model(
            session,
            name=name,
            version=version,
            sha256=sha256,
            config=config,
            actor_email=gov.actor_email,
            clips=clips,
            description=description,
        )
        return Registered(
            model.id,
            model.name,
            model.version,
            model.sha256,
            len(clips),
            tuple(sorted({clip.subject_id for clip in clips})),
        )


def checkpoint_identity(
    checkpoint: Path, *, expected_sha256: str | None = None
) -> tuple[str, dict[str, Any]]:
    """(sha256, architecture config) of a checkpoint, loaded strictly (what `model register` records)."""
    loaded = load_mcnet(checkpoint, expected_sha256=expected_sha256, dtype=torch.float32)
    return loaded.sha256, loaded.config.to_dict()


def lineage_from_data(gov: Governance, data: Path) -> list[models_registry.TrainingClip]:
    """Store and describe the clips of a prepared folder, for registering a model trained on it elsewhere."""
    manifest = read_manifest(Path(data))
    with unit_of_work(gov.sessions) as session:
        subjects = clip_subjects(session, manifest)
    clips = []
    for clip in manifest.clips:
        stored = gov.store.put_file(
            "inputs",
            f"training/{clip.sha256}.pt",
            manifest.root / "clips" / f"{clip.name}.pt",
            metadata={"kind": "training-clip"},
            expected_sha256=clip.sha256,
        )
        clips.append(
            models_registry.TrainingClip(
                sha256=stored.sha256,
                subject_id=subjects[clip.name],
                split=clip.split,
                frames=clip.frames,
                bucket=stored.bucket,
                object_key=stored.key,
                size_bytes=stored.size,
                origin=f"{clip.origin} (frames {clip.first_frame}-{clip.first_frame + clip.frames - 1})",
            )
        )
    return clips


def train_model(
    data: Sequence[Path],
    run_dir: Path,
    *,
    config: MCNetConfig,
    spec: TrainingSpec,
    device: str = "auto",
    vgg_weights: Path | None = None,
    resume: bool = False,
    heldout_fraction: float = 0.2,
    max_seconds: float | None = None,
    threads: int | None = None,
    progress: Callable[[StepReport], None] | None = None,
    subjects: Sequence[str] | None = None,
    check_data: Callable[[Path], object] | None = None,
    nproc: int = 1,
    crop: str = "face",
) -> TrainingResult:
    """Train an MCNet; `data` is one prepared folder, or videos / frame folders to prepare first.

    `subjects` names the person in each video (see `prepare_data`); `check_data` is called with the
    prepared folder before the first step (the training-consent check of `train_and_register`). With
    `nproc` > 1 the run is DistributedDataParallel over that many local processes started by torchrun
    (`models.training.distributed`); rank 0 logs its progress (pairs/s, ETA) instead of `progress`.

    Raises:
        ModelError / InputError subclasses with one-line messages on bad data, settings or checkpoints.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        folder = _data_folder(data, run_dir, config, heldout_fraction, subjects, crop)
        if check_data is not None:
            check_data(folder)
        if nproc > 1:
            return _train_distributed(
                folder,
                run_dir,
                nproc=nproc,
                config=config,
                spec=spec,
                device=device,
                vgg_weights=vgg_weights,
                resume=resume,
                max_seconds=max_seconds,
                threads=threads,
            )
        trainer = Trainer(
            config,
            spec,
            data_root=folder,
            run_dir=run_dir,
            device=resolve_device(device),
            vgg_weights=vgg_weights,
            resume=resume,
        )
    except BaseException:
        if created and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a run that never started leaves nothing behind
        raise
    return trainer.run(progress, max_seconds=max_seconds)


def _train_distributed(
    folder: Path,
    run_dir: Path,
    *,
    nproc: int,
    config: MCNetConfig,
    spec: TrainingSpec,
    device: str,
    vgg_weights: Path | None,
    resume: bool,
    max_seconds: float | None,
    threads: int | None,
) -> TrainingResult:
    """Run `models.training.distributed` under torchrun with `nproc` processes on this machine."""
    import subprocess
    import sys

    from models.training.distributed import read_result, write_job
    from models.training.evaluation import Scores

    if spec.shards % nproc:
        raise TrainingDataError(f"--shards {spec.shards} is not a multiple of --nproc {nproc}")
    job = write_job(
        run_dir,
        config=config,
        spec=spec,
        data_root=folder,
        device=device,
        vgg_weights=vgg_weights,
        resume=resume,
        max_seconds=max_seconds,
        threads=threads,
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "models.training.distributed",
        str(job),
    ]
    logger.info("starting %d training processes: %s", nproc, " ".join(command))
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise TrainingDataError(
            f"the distributed training run failed (torchrun exit status {done.returncode}); its log is above"
        )
    result = read_result(run_dir)
    evaluation = result["evaluation"]
    report = (
        None
        if evaluation is None
        else EvaluationReport(
            frames=evaluation["frames"],
            model=Scores(**evaluation["model"]),
            copy_source=Scores(**evaluation["copy_source"]),
        )
    )
    return TrainingResult(
        steps=result["steps"],
        last_checkpoint=Path(result["last_checkpoint"]),
        last_sha256=result["last_sha256"],
        best_checkpoint=Path(result["best_checkpoint"]) if result["best_checkpoint"] else None,
        reconstruction_loss=result["reconstruction_loss"],
        evaluation=report,
        history=result["history"],
    )


def train_and_register(
    gov: Governance,
    data: Sequence[Path],
    run_dir: Path,
    *,
    name: str,
    version: str | None = None,
    description: str = "",
    **train_kwargs: Any,
) -> tuple[TrainingResult, Registered]:
    """A governed `train_model`: consent checked before the first step, the result registered at the end.

    `version` defaults to `step<N>` (the step the run reached), so a resumed run registers anew.
    """
    result = train_model(
        data, run_dir, check_data=lambda folder: check_training_consent(gov, folder), **train_kwargs
    )
    folder = _data_folder(
        data, Path(run_dir), train_kwargs["config"], train_kwargs.get("heldout_fraction", 0.2)
    )
    registered = register_trained(
        gov,
        folder,
        result.last_checkpoint,
        name=name,
        version=version or f"step{result.steps}",
        description=description,
    )
    return result, registered


PRECISIONS = ("auto", "float32", "bf16")


def use_bf16(precision: str, device: str) -> bool:
    """Whether to train under bfloat16 autocast: `auto` picks it on a CUDA device that supports it."""
    if precision not in PRECISIONS:
        raise TrainingDataError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "float32":
        return False
    target = resolve_device(device)
    supported = target.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "bf16" and target.type == "cuda" and not supported:
        raise TrainingDataError("this CUDA device does not support bfloat16: use --precision float32")
    return supported or (precision == "bf16" and target.type == "cpu")


def evaluate_checkpoint(
    checkpoint: Path,
    data: Path,
    *,
    device: str = "auto",
    expected_sha256: str | None = None,
    per_clip: int = 16,
    seed: int = 0,
) -> EvaluationReport:
    """Held-out L1 / PSNR / SSIM of a checkpoint against the copy-source baseline on a prepared folder."""
    target = resolve_device(device)
    loaded = load_mcnet(checkpoint, expected_sha256=expected_sha256, device=target, dtype=torch.float32)
    manifest = read_manifest(Path(data))
    if manifest.image_size != loaded.config.image_size:
        raise TrainingDataError(
            f"data frames are {manifest.image_size}px but the checkpoint's model takes {loaded.config.image_size}px"
        )
    pairs = evaluation_pairs(manifest, per_clip=per_clip)
    return evaluate(loaded.model, pairs, device=target, seed=seed)


@dataclass(frozen=True)
class IdentityScores:
    """Identity embedding distances (deepface Dlib, cosine; lower is the same person), with baselines.

    AED: generated frame vs the real driving frame (same person), beside copying the source frame.
    Cross-identity: one held-out person's portrait driven by another's frames; generated frame vs the
    portrait, beside copying the source (0 by construction: perfect identity, no motion at all) and
    copying the driver (what a model that ignored the portrait would score). Frames without a
    detectable face are left out and counted in `missing`.

    Motion, from dlib's 68 landmarks (`pipeline.faces.landmarks`, the motion checks' predictor):
    AKD: generated frame vs the real driving frame, mean distance over the 68 points in pixels of the
    model's resolution, beside copying the source frame (the real frame against itself scores 0), on
    the frames where all three have a face (`akd_frames`). Cross-identity motion fidelity: per pair,
    `pipeline.checks.motion.compare_tracks` of the driver's frames against the output's (size-normalised
    landmark motion distance, mouth-opening correlation), averaged over pairs, beside copying the
    source (a still portrait: no motion followed).
    """

    aed_model: float
    aed_copy_source: float
    cross_model: float | None
    cross_copy_source: float | None
    cross_copy_driver: float | None
    frames: int
    missing: int
    akd_model: float | None
    akd_copy_source: float | None
    akd_frames: int
    cross_motion_distance_model: float | None
    cross_motion_distance_copy_source: float | None
    cross_mouth_correlation_model: float | None
    cross_mouth_correlation_copy_source: float | None
    landmark_model: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _face_ready(frame: torch.Tensor) -> Any:
    """(3, S, S) float in [0, 1] -> (H, W, 3) uint8, upscaled to at least 256 px (dlib finds no small faces)."""
    import numpy as np
    from PIL import Image

    image = (frame.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    side = image.shape[0]
    if side < 256:
        image = np.asarray(Image.fromarray(image).resize((256, 256), Image.Resampling.BICUBIC))
    return image


def keypoint_distance(first: Any, second: Any) -> float:
    """Mean over the landmarks of the L2 distance between two (N, 2) landmark arrays (AKD of one frame)."""
    import numpy as np

    return float(np.linalg.norm(np.asarray(first) - np.asarray(second), axis=1).mean())


def identity_scores(
    checkpoint: Path,
    data: Path,
    *,
    device: str = "auto",
    per_clip: int = 8,
    seed: int = 0,
    verifier: Any = None,
    detector: Any = None,
) -> IdentityScores:
    """AED, AKD and the cross-identity identity distance and motion fidelity of a checkpoint on the
    held-out clips of `data` (see `IdentityScores`)."""
    import numpy as np

    from models.training.dataset import cross_identity_pairs
    from pipeline.checks.identity import IdentityVerifier
    from pipeline.checks.identity import distance as embedding_distance
    from pipeline.checks.motion import FaceTrack, compare_tracks
    from pipeline.faces.landmarks import shared_detector

    target = resolve_device(device)
    loaded = load_mcnet(checkpoint, device=target, dtype=torch.float32)
    manifest = read_manifest(Path(data))
    if manifest.image_size != loaded.config.image_size:
        raise TrainingDataError(
            f"data frames are {manifest.image_size}px but the checkpoint's model takes {loaded.config.image_size}px"
        )
    check = verifier or IdentityVerifier()
    marks = detector or shared_detector()
    sums: dict[str, list[float]] = {
        "aed_model": [],
        "aed_copy_source": [],
        "cross_model": [],
        "cross_copy_source": [],
        "cross_copy_driver": [],
        "akd_model": [],
        "akd_copy_source": [],
        "motion_model": [],
        "motion_copy_source": [],
        "mouth_model": [],
        "mouth_copy_source": [],
    }
    counted = {"frames": 0, "missing": 0}
    # Landmarks of the cross pair being evaluated: driver frames, output frames (None: no face).
    track: dict[str, list[Any]] = {"driving": [], "output": [], "source": []}

    def landmarks(frame: torch.Tensor) -> Any:
        """68 landmarks of a (3, S, S) frame, in pixels of the model's resolution S."""
        image = _face_ready(frame)
        found = marks.landmarks(image)
        return None if found is None else found * (frame.shape[-1] / image.shape[0])

    def observer(prefix: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]:
        def observe(source: torch.Tensor, driving: torch.Tensor, prediction: torch.Tensor) -> None:
            source_embedding = check.embed(_face_ready(source[0]))
            source_marks = landmarks(source[0])
            for index in range(prediction.shape[0]):
                counted["frames"] += 1
                ours = check.embed(_face_ready(prediction[index]))
                driver = check.embed(_face_ready(driving[index]))
                ours_marks, driver_marks = landmarks(prediction[index]), landmarks(driving[index])
                if prefix == "aed":
                    if ours_marks is not None and driver_marks is not None and source_marks is not None:
                        sums["akd_model"].append(keypoint_distance(ours_marks, driver_marks))
                        sums["akd_copy_source"].append(keypoint_distance(source_marks, driver_marks))
                else:
                    track["driving"].append(driver_marks)
                    track["output"].append(ours_marks)
                    track["source"].append(source_marks)
                if ours is None or driver is None or source_embedding is None:
                    counted["missing"] += 1
                    continue
                if prefix == "aed":
                    sums["aed_model"].append(embedding_distance(ours, driver))
                    sums["aed_copy_source"].append(embedding_distance(source_embedding, driver))
                else:
                    sums["cross_model"].append(embedding_distance(ours, source_embedding))
                    sums["cross_copy_source"].append(0.0)
                    sums["cross_copy_driver"].append(embedding_distance(driver, source_embedding))

        return observe

    evaluate(
        loaded.model,
        evaluation_pairs(manifest, per_clip=per_clip),
        device=target,
        seed=seed,
        observe=observer("aed"),
    )
    side = loaded.config.image_size
    for pair in cross_identity_pairs(manifest, per_clip=per_clip):
        # One pair at a time: motion is compared along each driver's own sequence.
        track.update(driving=[], output=[], source=[])
        evaluate(loaded.model, [pair], device=target, seed=seed, observe=observer("cross"))
        indices = list(range(len(track["driving"])))

        def face_track(points: list[Any], indices: list[int] = indices) -> FaceTrack:
            return FaceTrack(frame_indices=indices, points=points, image_size=(side, side))

        driving_track = face_track(track["driving"])
        still = track["source"][0] if track["source"] else None
        for name, points in (("model", track["output"]), ("copy_source", [still] * len(indices))):
            motion = compare_tracks(driving_track, face_track(points), every=1, model=marks.model).scores()
            sums[f"motion_{name}"].append(motion["motion_mean_distance"])
            sums[f"mouth_{name}"].append(motion["mouth_correlation"])
    if not sums["aed_model"]:
        raise TrainingDataError(
            f"no face was found in any evaluated frame of {data}: identity scores need faces"
        )

    def mean(name: str) -> float | None:
        return float(np.mean(sums[name])) if sums[name] else None

    return IdentityScores(
        aed_model=float(mean("aed_model") or 0.0),
        aed_copy_source=float(mean("aed_copy_source") or 0.0),
        cross_model=mean("cross_model"),
        cross_copy_source=mean("cross_copy_source"),
        cross_copy_driver=mean("cross_copy_driver"),
        frames=counted["frames"],
        missing=counted["missing"],
        akd_model=mean("akd_model"),
        akd_copy_source=mean("akd_copy_source"),
        akd_frames=len(sums["akd_model"]),
        cross_motion_distance_model=mean("motion_model"),
        cross_motion_distance_copy_source=mean("motion_copy_source"),
        cross_mouth_correlation_model=mean("mouth_model"),
        cross_mouth_correlation_copy_source=mean("mouth_copy_source"),
        landmark_model=marks.model.as_dict(),
    )


def export_model(source: Path, target: Path, *, storage: str = "float32") -> str:
    """Strip optimiser and random states from a training checkpoint (see `models.training.export`)."""
    return export_checkpoint(source, target, storage=storage)
