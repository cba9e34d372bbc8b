"""Runtime settings, read from the environment (prefix `LIKENESS_`) only at the edges and passed down."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from governance.database import DEFAULT_DATABASE_URL


class SettingsInvalid(ValueError):
    """A `LIKENESS_*` variable pydantic-settings could not even parse (a list that is not JSON, say);
    the message is one line naming the variable."""


class Settings(BaseSettings):
    """Everything an operator may set. Unknown `LIKENESS_*` variables are ignored by pydantic-settings,
    but a malformed value for a known one refuses to load with the field named."""

    model_config = SettingsConfigDict(env_prefix="LIKENESS_", env_file=None, extra="ignore")

    # Where state lives on one machine; every other default path hangs off it.
    var_dir: Path = Path("var")
    database_url: str = DEFAULT_DATABASE_URL

    # Object storage (any S3 endpoint; locally the project's own SeaweedFS).
    s3_endpoint: str = "127.0.0.1:8333"
    s3_access_key: str = "likeness"
    s3_secret_key: SecretStr = SecretStr("likeness-local-secret")
    s3_secure: bool = False
    s3_bucket_prefix: str = "likeness"
    max_object_bytes: int = Field(default=2 * 1024**3, gt=0)

    # Inputs may only be read from these folders (fail closed on anything else).
    allowed_input_dirs: list[Path] = Field(default_factory=lambda: [Path.cwd()])

    # The animation model.
    mcnet_checkpoint: Path | None = None
    mcnet_checkpoint_sha256: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    inference_mode: Literal["exact", "fast"] = "exact"
    # None lets the animator choose: 1 on CPU (batching is slower per frame there and multiplies memory,
    # see docs/mcnet.md), 8 on CUDA.
    inference_batch_size: int | None = Field(default=None, ge=1, le=64)
    # `full_frame`: the animated face is pasted back into the whole portrait; `crop`: the model's square.
    output_mode: Literal["crop", "full_frame"] = "full_frame"

    # Governance.
    policy_path: Path | None = None
    # The size the `gpu` global concurrency limit is created with when it does not exist yet; an existing
    # limit is the operator's (`prefect gcl update gpu --limit N`) and never changed by a run.
    gpu_concurrency: int = Field(default=1, ge=1)
    review_timeout_hours: float = Field(default=72.0, gt=0)
    retention_days: int = Field(default=30, ge=1)

    # Flows: input limits, check sampling, and when a job held by a silent run may be taken over.
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    # A driving video longer than this (or with more frames) is refused from ffprobe, before decoding.
    max_video_seconds: float = Field(default=600.0, gt=0)
    max_video_frames: int = Field(default=36_000, gt=0)
    fidelity_every: int = Field(default=3, ge=1)
    # Detect the driving video's face on every k-th frame (boxes between are interpolated and smoothed).
    driving_detect_every: int = Field(default=2, ge=1, le=25)
    reclaim_after_minutes: float = Field(default=360.0, gt=0)

    # Orchestration (Prefect). `PREFECT_API_URL` (Prefect's own variable) names the API to use; without
    # it the project's local server (`likeness orchestrator up`, state under var_dir/prefect) is used.
    prefect_port: int = Field(default=4200, ge=0, le=65535)
    # The local server's own database (e.g. postgresql+asyncpg://...); None: SQLite under var_dir/prefect.
    prefect_database_url: str | None = None
    # Where an approval's publication runs: a deployment (`publish-job/publish-job--prod`) taken by a `cpu`
    # worker, or (None) a background thread of the approving process. See flows/publish/queue.py.
    publish_deployment: str | None = None
    # Where `nightly-batch` sends its jobs when it runs as a deployment: one run of this `render-job`
    # deployment per job, so every worker of the gpu pool shares the batch. Empty: always run them here.
    render_deployment: str = "render-job/render-job--prod"
    # The task runner for running a batch's jobs here: threads, or Dask (a scheduler's address, or a
    # local cluster of threads when empty); how many jobs at once.
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = None
    task_runner_workers: int = Field(default=4, ge=1, le=64)
    # Render and publish runs beat every so often; a RUNNING run silent for longer is marked crashed and
    # its job taken over (minutes, not the `reclaim_after_minutes` clock). See flows/runtime/heartbeat.py.
    run_heartbeat_seconds: float = Field(default=15.0, gt=0)
    run_heartbeat_timeout_seconds: float = Field(default=90.0, gt=0)
    # A `gpu` slot is a lease renewed while its run lives; a run killed outright frees it after this long.
    gpu_lease_seconds: float = Field(default=60.0, ge=60.0, le=3600.0)

    # Provenance signing; empty means "make a local development CA under var_dir".
    signing_cert_path: Path | None = None
    signing_key_path: Path | None = None
    trust_anchor_path: Path | None = None

    # Audit checkpoints (docs/governance.md): the log's name, the Ed25519 key signing its checkpoints
    # (empty: a development key under var_dir), the verifier key auditors trust (empty: the signing
    # key's own), and how long each checkpoint stays locked in the audit bucket.
    audit_origin: str = "likeness.local/audit"
    audit_signing_key_path: Path | None = None
    audit_verifier_key: str | None = None
    audit_retention_days: int = Field(default=3650, ge=1)

    # Web console.
    console_host: str = "127.0.0.1"
    console_port: int = 8765
    console_session_secret: SecretStr | None = None
    console_session_minutes: int = Field(default=30, ge=1)
    # Behind a TLS proxy: the origin browsers see (https://console.example) and the proxy's addresses
    # or networks, comma-separated (only their X-Forwarded-* headers are believed).
    console_public_origin: str | None = None
    console_trusted_proxies: str = ""

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """Refuse a URL SQLAlchemy cannot parse or has no dialect for now, not at the first query."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            make_url(value).get_dialect()
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            reason = (
                "unknown database dialect" if isinstance(exc, NoSuchModuleError) else "not a database URL"
            )
            raise ValueError(
                f"{reason} (e.g. sqlite:///var/likeness.db or postgresql+psycopg://user@host/db)"
            ) from None
        return value

    def as_environment(self) -> dict[str, str]:
        """`LIKENESS_*` variables that give a child process (a worker, a CLI) exactly these settings.

        Every field that is not None, in the form `load_settings` reads back: paths and numbers as text,
        booleans as `true`/`false`, lists as JSON, secrets revealed (the child needs them).
        """
        environment: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, list):
                text = json.dumps([str(item) for item in value])
            else:
                text = str(value)
            environment[f"LIKENESS_{name.upper()}"] = text
        return environment


def load_settings() -> Settings:
    """Read settings from the environment; called by the CLI and the flows' runtime only.

    Raises:
        pydantic.ValidationError: a value of the wrong type or out of range (the field is named).
        SettingsInvalid: a value that cannot be parsed at all, e.g. a list that is not JSON.
    """
    try:
        return Settings()
    except SettingsError as exc:
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"LIKENESS_{found.group(1).upper()}" if found else "a LIKENESS_* variable"
        cause = exc.__cause__
        hint = (
            ' (give a JSON list, e.g. ["/data/inputs"])'
            if found and found.group(1) == "allowed_input_dirs"
            else ""
        )
        detail = f": {str(cause).splitlines()[0]}" if cause is not None and str(cause) else ""
        raise SettingsInvalid(f"invalid {name}: cannot be parsed{detail}{hint}") from None
