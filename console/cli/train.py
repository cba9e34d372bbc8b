"""`likeness train`: prepare training clips, train an MCNet, and score a checkpoint on held-out clips.

`run` is governed: it needs the acting user (`--actor`), refuses footage whose subject holds no consent
covering model training, and registers the checkpoint it makes with its training-data lineage.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from console.cli.context import ActorOption, CliError, acting_user, governance_command
from console.cli.errors import one_line_errors
from console.cli.terminal import make_console
from flows import training
from flows.runtime.root import make_store
from governance.models_registry import REGISTERING_ROLES

app = typer.Typer(help="Train MCNet on talking-face videos and evaluate checkpoints.", no_args_is_help=True)
console = make_console()


def _configure_logging() -> None:
    """Training reports through logging (e.g. the VGG19 fallback); show it on stderr once."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _scores_table(report: training.EvaluationReport, title: str) -> Table:
    table = Table(title=title)
    table.add_column("")
    table.add_column("L1 (lower is better)", justify="right")
    table.add_column("PSNR dB", justify="right")
    table.add_column("SSIM", justify="right")
    for name, scores in (("model", report.model), ("copy the source frame", report.copy_source)):
        table.add_row(name, f"{scores.l1:.4f}", f"{scores.psnr:.2f}", f"{scores.ssim:.4f}")
    return table


@app.command("prepare")
def prepare(
    inputs: Annotated[list[Path], typer.Argument(help="Videos, frame folders, or folders of either.")],
    out: Annotated[Path, typer.Option("--out", help="New data folder (must not exist or be empty).")],
    size: Annotated[int, typer.Option(help="Frame side in pixels (the model's image_size).")] = 256,
    heldout: Annotated[float, typer.Option(help="Share of each clip's last frames held out.")] = 0.2,
    max_frames: Annotated[int | None, typer.Option(help="Read at most this many frames per input.")] = None,
    subject: Annotated[
        list[str] | None,
        typer.Option("--subject", help="Subject reference of the person: one, or one per input."),
    ] = None,
    crop: Annotated[
        str, typer.Option(help="Videos: face (track the one face) or center (face-centred footage).")
    ] = "face",
) -> None:
    """Decode videos into the clip files training reads (face tracked and cropped, resized)."""
    _configure_logging()
    with one_line_errors(*training.EXPECTED_ERRORS):
        manifest = training.prepare_data(
            inputs,
            out,
            size=size,
            heldout_fraction=heldout,
            max_frames=max_frames,
            subjects=subject,
            crop=crop,
        )
    train = sum(c.frames for c in manifest.split("train"))
    held = sum(c.frames for c in manifest.split("heldout"))
    console.print(
        f"prepared {len(manifest.clips)} clip(s) in {out}: {train} training and {held} held-out frames"
    )


@app.command("run")
def run(
    data: Annotated[list[Path], typer.Argument(help="A prepared data folder, or videos / frame folders.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, history, prepared data.")],
    config: Annotated[
        str, typer.Option(help=f"Preset ({', '.join(training.PRESETS)}) or config JSON.")
    ] = "vox256",
    steps: Annotated[int, typer.Option(help="Total optimisation steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 4,
    lr: Annotated[float, typer.Option(help="Adam learning rate (paper: 2e-4).")] = 2e-4,
    lr_milestone: Annotated[
        list[int] | None,
        typer.Option(help="Step at which the learning rate is multiplied by 0.1 (repeatable)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds weights, sampling, warps and noise.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    vgg_weights: Annotated[
        Path | None, typer.Option(help="Local torchvision VGG19 state dict; without it an L1 loss is used.")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 250,
    eval_every: Annotated[int, typer.Option(help="Steps between held-out evaluations (0: end only).")] = 0,
    heldout: Annotated[float, typer.Option(help="Held-out share when videos are given.")] = 0.2,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop early (saved) after this wall time.")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="No flips or colour jitter.")] = False,
    nproc: Annotated[
        int, typer.Option(help="Processes (GPUs) on this machine: DistributedDataParallel via torchrun.")
    ] = 1,
    shards: Annotated[
        int | None,
        typer.Option(
            help="Shards of the global batch, each with its own BatchNorm statistics (default: --nproc)."
        ),
    ] = None,
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on a GPU that supports it), float32 or bf16.")
    ] = "auto",
    crop: Annotated[str, typer.Option(help="Videos given: face (tracked) or center crop.")] = "face",
    workers: Annotated[
        int, typer.Option(help="Worker processes loading the pairs (0: in this process).")
    ] = 0,
    subject: Annotated[
        list[str] | None,
        typer.Option("--subject", help="Subject reference of the person in the videos given."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Registered model name (default: the run folder's name).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Registered model version (default: step<N>).")] = None,
    description: Annotated[str, typer.Option(help="What the model is for (registered with it).")] = "",
    actor: ActorOption = "",
) -> None:
    """Train MCNet with the paper's losses; checkpoints go to OUT/last.pth.tar (and best.pth.tar).

    Every clip's subject must hold a consent covering model training; the result is registered.
    """
    _configure_logging()
    with governance_command() as ctx, one_line_errors(*training.EXPECTED_ERRORS):
        if not actor:
            raise CliError("training is governed: say who acts with --actor EMAIL (or LIKENESS_ACTOR)")
        user = acting_user(ctx, actor, REGISTERING_ROLES, "model.register")
        store = make_store(ctx.settings)
        store.ensure_buckets()
        gov = training.Governance(sessions=ctx.sessions, store=store, actor_email=user.email)
        spec_kwargs: dict[str, object] = {}
        if no_augment:
            spec_kwargs["augmentation"] = None
        spec = training.TrainingSpec(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            lr_milestones=tuple(sorted(lr_milestone or ())),
            seed=seed,
            checkpoint_every=checkpoint_every,
            eval_every=eval_every,
            shards=shards or nproc,
            workers=workers,
            bf16=training.use_bf16(precision, device),
            **spec_kwargs,  # type: ignore[arg-type]
        )
        model_config = training.resolve_config(config)
        columns = (
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[loss]}"),
            TextColumn("{task.fields[rate]}"),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("train", total=steps, loss="", rate="")

            def report(step: training.StepReport) -> None:
                text = f"loss {step.losses['total']:.3f}" + (" (skipped)" if step.skipped else "")
                eta = "" if step.eta_seconds is None else f", ETA {step.eta_seconds / 60:.1f} min"
                bar.update(
                    task, completed=step.step, loss=text, rate=f"{step.pairs_per_second:.1f} pairs/s{eta}"
                )

            result, registered = training.train_and_register(
                gov,
                data,
                out,
                name=name or out.name,
                version=version,
                description=description,
                subjects=subject,
                config=model_config,
                spec=spec,
                device=device,
                vgg_weights=vgg_weights,
                resume=resume,
                heldout_fraction=heldout,
                max_seconds=None if max_minutes is None else max_minutes * 60,
                threads=threads,
                progress=report,
                nproc=nproc,
                crop=crop,
            )
    console.print(
        f"trained to step {result.steps} ({result.reconstruction_loss} reconstruction loss); "
        f"checkpoint {result.last_checkpoint} sha256 {result.last_sha256}"
    )
    console.print(
        f"registered model {registered.name}@{registered.version} ({registered.clips} training clip(s) of "
        f"{len(registered.subjects)} subject(s)); it may render"
    )
    if result.evaluation is not None:
        console.print(
            _scores_table(result.evaluation, f"held-out reconstruction, {result.evaluation.frames} frames")
        )


@app.command("eval")
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint to score.")],
    data: Annotated[Path, typer.Argument(help="Prepared data folder with held-out clips.")],
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    sha256: Annotated[
        str | None, typer.Option(help="Refuse the checkpoint unless its sha256 matches.")
    ] = None,
    per_clip: Annotated[int, typer.Option(help="Driving frames per held-out clip.")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    identity: Annotated[
        bool,
        typer.Option(
            "--identity", help="Also AED, AKD and the cross-identity score (faces, landmarks; slower)."
        ),
    ] = False,
) -> None:
    """Held-out L1 / PSNR / SSIM (and with --identity, AED, AKD and cross-identity) against copying the source."""
    _configure_logging()
    with one_line_errors(*training.EXPECTED_ERRORS):
        report = training.evaluate_checkpoint(
            checkpoint, data, device=device, expected_sha256=sha256, per_clip=per_clip
        )
        ids = (
            training.identity_scores(checkpoint, data, device=device, per_clip=min(per_clip, 8))
            if identity
            else None
        )
    if as_json:
        console.print_json(json.dumps({**report.as_dict(), **({"identity": ids.as_dict()} if ids else {})}))
        return
    console.print(_scores_table(report, f"held-out reconstruction, {report.frames} frames"))
    if ids is not None:
        table = Table(
            title=f"identity distance (Dlib cosine, lower = same person), {ids.frames} frames, "
            f"{ids.missing} without a face"
        )
        for column in ("", "model", "copy the source frame", "copy the driver"):
            table.add_column(column, justify="right" if column else "left")
        table.add_row("AED (vs the real frame)", f"{ids.aed_model:.4f}", f"{ids.aed_copy_source:.4f}", "-")

        def show(value: float | None) -> str:
            return "-" if value is None else f"{value:.4f}"

        table.add_row(
            "cross-identity (vs the portrait)",
            show(ids.cross_model),
            show(ids.cross_copy_source),
            show(ids.cross_copy_driver),
        )
        console.print(table)
        motion = Table(title=f"motion (dlib 68 landmarks), AKD on {ids.akd_frames} frames with a face")
        for column in ("", "model", "copy the source frame"):
            motion.add_column(column, justify="right" if column else "left")
        motion.add_row(
            "AKD (px, vs the real frame; lower is better)", show(ids.akd_model), show(ids.akd_copy_source)
        )
        motion.add_row(
            "cross-identity motion distance (vs the driver; lower)",
            show(ids.cross_motion_distance_model),
            show(ids.cross_motion_distance_copy_source),
        )
        motion.add_row(
            "cross-identity mouth correlation (vs the driver; higher)",
            show(ids.cross_mouth_correlation_model),
            show(ids.cross_mouth_correlation_copy_source),
        )
        console.print(motion)


@app.command("export")
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Training checkpoint (e.g. RUN/best.pth.tar).")],
    out: Annotated[Path, typer.Argument(help="Where to write the inference checkpoint.")],
    storage: Annotated[
        str, typer.Option(help="Weight storage dtype: float32, float16 or bfloat16.")
    ] = "float32",
) -> None:
    """Write an inference-only checkpoint (networks + config + step), e.g. to ship or commit."""
    _configure_logging()
    with one_line_errors(*training.EXPECTED_ERRORS):
        sha256 = training.export_model(checkpoint, out, storage=storage)
    console.print(f"wrote {out} ({out.stat().st_size} bytes) sha256 {sha256}")
