"""Runtime settings, read from the environment (prefix `LIKENESS_`) only at the edges and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from governance.database import DEFAULT_DATABASE_URL


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
    # worker, or (None) a background thread of the approving process. See flows/publish_queue.py.
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
    # its job taken over (minutes, not the `reclaim_after_minutes` clock). See flows/heartbeat.py.
    run_heartbeat_seconds: float = Field(default=15.0, gt=0)
    run_heartbeat_timeout_seconds: float = Field(default=90.0, gt=0)
    # A `gpu` slot is a lease renewed while its run lives; a run killed outright frees it after this long.
    gpu_lease_seconds: float = Field(default=60.0, ge=60.0, le=3600.0)

    # Provenance signing; empty means "make a local development CA under var_dir".
    signing_cert_path: Path | None = None
    signing_key_path: Path | None = None
    trust_anchor_path: Path | None = None

    # Web console.
    console_host: str = "127.0.0.1"
    console_port: int = 8765
    console_session_secret: SecretStr | None = None
    console_session_minutes: int = Field(default=30, ge=1)


def load_settings() -> Settings:
    """Read settings from the environment; called by the CLI and the flows' runtime only."""
    return Settings()
