"""`likeness model`: register, list, show and retire the models that may render, with their lineage.

Only a registered, active model renders (`governance.models_registry`). `likeness train run` registers
what it makes; `register` is for a checkpoint trained elsewhere (with `--data`, the prepared folder it
was trained on, whose subjects must hold a consent covering model training; without, its lineage is
recorded as unknown).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from console.cli.context import ActorOption, CliError, acting_user, governance_command, out, show_time
from console.cli.errors import one_line_errors
from flows import training
from flows.runtime.root import make_store
from governance import models_registry
from governance.enums import ModelStatus
from governance.uow import unit_of_work

app = typer.Typer(
    help="Models: which checkpoints may render, trained on whose consented footage.", no_args_is_help=True
)


@app.command("register")
def register(
    checkpoint: Annotated[Path, typer.Argument(help="The checkpoint file (its sha256 names it).")],
    name: Annotated[str, typer.Option(help="Model name, e.g. mcnet-newsroom.")],
    version: Annotated[str, typer.Option(help="Model version, e.g. 1 or 2026.12.")],
    actor: ActorOption,
    data: Annotated[
        Path | None, typer.Option(help="Prepared training data it was trained on (lineage).")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Refuse the checkpoint unless its sha256 matches.")
    ] = None,
    description: Annotated[str, typer.Option(help="What the model is for.")] = "",
) -> None:
    """Register a checkpoint so that it may render (operator, compliance or admin)."""
    with governance_command() as ctx, one_line_errors(*training.EXPECTED_ERRORS):
        user = acting_user(ctx, actor, models_registry.REGISTERING_ROLES, "model.register")
        digest, config = training.checkpoint_identity(checkpoint, expected_sha256=sha256)
        clips: list[models_registry.TrainingClip] = []
        if data is not None:
            store = make_store(ctx.settings)
            store.ensure_buckets()
            gov = training.Governance(sessions=ctx.sessions, store=store, actor_email=user.email)
            training.check_training_consent(gov, data)  # refuse before uploading anything
            clips = training.lineage_from_data(gov, data)
        with unit_of_work(ctx.sessions) as session:
            model = models_registry.register_model(
                session,
                name=name,
                version=version,
                sha256=digest,
                config=config,
                actor_email=user.email,
                clips=clips,
                description=description,
            )
            lineage = f"{len(clips)} training clip(s)" if clips else "lineage unknown (trained elsewhere)"
            out.print(
                f"model {model.name}@{model.version} registered as {model.id} (sha256 {model.sha256}); {lineage}"
            )


@app.command("list")
def list_models(
    actor: ActorOption,
    status: Annotated[
        str | None, typer.Option(help="Only this status: active, retired, consent_withdrawn.")
    ] = None,
) -> None:
    """Registered models, newest first."""
    with governance_command() as ctx:
        acting_user(ctx, actor, models_registry.READING_ROLES, "model.list")
        if status is not None and status not in {s.value for s in ModelStatus}:
            raise CliError(f"unknown status {status!r} (allowed: {', '.join(s.value for s in ModelStatus)})")
        with unit_of_work(ctx.sessions) as session:
            rows = models_registry.list_models(session, status=status)
            table = Table("name", "version", "status", "sha256", "clips", "registered", "by", title="models")
            for model in rows:
                clips = len(models_registry.lineage(session, model.id))
                table.add_row(
                    model.name,
                    model.version,
                    ModelStatus(model.status).value,
                    model.sha256[:16],
                    str(clips),
                    show_time(model.created_at),
                    model.created_by,
                )
        out.print(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="Model id, checkpoint sha256, or NAME@VERSION.")],
    actor: ActorOption,
) -> None:
    """One model: status, config, its training-data lineage (subjects and consents), its publications."""
    with governance_command() as ctx:
        acting_user(ctx, actor, models_registry.READING_ROLES, "model.show")
        with unit_of_work(ctx.sessions) as session:
            model = models_registry.get_model(session, ref)
            head = Table("", "", show_header=False, title=f"model {model.name}@{model.version}")
            head.add_row("id", model.id)
            head.add_row("sha256", model.sha256)
            head.add_row(
                "status",
                ModelStatus(model.status).value
                + (
                    f" since {show_time(model.status_changed_at)} by {model.status_changed_by}: "
                    f"{model.status_reason}"
                    if model.status_changed_at
                    else ""
                ),
            )
            head.add_row("registered", f"{show_time(model.created_at)} by {model.created_by}")
            head.add_row(
                "config",
                ", ".join(
                    f"{k}={v}" for k, v in sorted(model.config.items()) if not isinstance(v, dict | list)
                ),
            )
            if model.description:
                head.add_row("description", model.description)
            clips = Table(
                "subject", "split", "frames", "clip sha256", "origin", "consent", title="training data"
            )
            for clip, subject, used in models_registry.lineage(session, model.id):
                state = "revoked" if used.revoked_at else "in force"
                clips.add_row(
                    subject.reference,
                    clip.split,
                    str(clip.frames),
                    clip.sha256[:16],
                    clip.origin,
                    f"{used.id} v{used.version} ({state})",
                )
            pubs = Table("publication", "job", "published", "status", title="publications")
            for publication in models_registry.publications_of(session, model):
                pubs.add_row(
                    publication.id,
                    publication.job_id,
                    show_time(publication.published_at),
                    "taken down" if publication.taken_down_at else "published",
                )
        out.print(head)
        out.print(clips if clips.row_count else "training data: not recorded (trained outside likeness)")
        out.print(pubs if pubs.row_count else "publications: none")


@app.command("retire")
def retire(
    ref: Annotated[str, typer.Argument(help="Model id, checkpoint sha256, or NAME@VERSION.")],
    reason: Annotated[str, typer.Option(help="Why it may no longer render.")],
    actor: ActorOption,
) -> None:
    """Take a model out of use: jobs rendered with it are refused from now on (compliance or admin)."""
    with governance_command() as ctx:
        with unit_of_work(ctx.sessions) as session:
            model = models_registry.retire_model(session, ref=ref, actor_email=actor, reason=reason)
            out.print(f"model {model.name}@{model.version} retired: it may no longer render")
