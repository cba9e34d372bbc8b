"""Training on several processes, GPUs or machines: the entry point `torchrun` starts once per process.

    torchrun --nproc-per-node N [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT] \\
        -m models.training.distributed RUN/distributed-job.json

`likeness train run --nproc N` writes the job file (architecture, settings, data folder, device) and
runs this through torchrun on one machine; on several machines, start the same command on each with the
same job file on shared storage. Each process joins the group torchrun describes (environment variables
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), with the NCCL backend on CUDA and gloo on the CPU, and
runs `Trainer` with its rank: rank 0 writes the checkpoints, the history and `distributed-result.json`.
Only torch and the standard library are imported here, like the rest of `models/`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from models.config import MCNetConfig
from models.errors import ModelError
from models.training.errors import TrainingError
from models.training.trainer import Distributed, Trainer, TrainingResult, TrainingSpec

logger = logging.getLogger(__name__)

JOB_NAME = "distributed-job.json"
RESULT_NAME = "distributed-result.json"


def write_job(
    run_dir: Path,
    *,
    config: MCNetConfig,
    spec: TrainingSpec,
    data_root: Path,
    device: str,
    vgg_weights: Path | None,
    resume: bool,
    max_seconds: float | None,
    threads: int | None,
) -> Path:
    """Describe a run for `main` in `run_dir/distributed-job.json`; returns its path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    job = {
        "config": config.to_json(),
        "spec": spec.to_dict(),
        "data_root": str(Path(data_root).resolve()),
        "run_dir": str(run_dir.resolve()),
        "device": device,
        "vgg_weights": str(vgg_weights) if vgg_weights is not None else None,
        "resume": resume,
        "max_seconds": max_seconds,
        "threads": threads,
    }
    path = run_dir / JOB_NAME
    path.write_text(json.dumps(job, indent=1), encoding="utf-8")
    (run_dir / RESULT_NAME).unlink(missing_ok=True)
    return path


def read_result(run_dir: Path) -> dict[str, Any]:
    """What rank 0 wrote at the end of the run."""
    path = run_dir / RESULT_NAME
    if not path.is_file():
        raise TrainingError(f"the distributed run wrote no {RESULT_NAME} in {run_dir}: see its log above")
    return json.loads(path.read_text(encoding="utf-8"))


def _device(kind: str, local_rank: int) -> torch.device:
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def run_job(job_path: Path) -> TrainingResult:
    """Join the process group torchrun set up and train this process's share of the job."""
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    device = _device(job["device"], int(os.environ.get("LOCAL_RANK", "0")))
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        trainer = Trainer(
            MCNetConfig.from_json(job["config"]),
            TrainingSpec.from_dict(job["spec"]),
            data_root=Path(job["data_root"]),
            run_dir=Path(job["run_dir"]),
            device=device,
            vgg_weights=Path(job["vgg_weights"]) if job["vgg_weights"] else None,
            resume=bool(job["resume"]),
            distributed=Distributed(rank=rank, world_size=world),
        )
        result = trainer.run(max_seconds=job.get("max_seconds"))
        if rank == 0:
            summary = {
                "steps": result.steps,
                "last_checkpoint": str(result.last_checkpoint),
                "last_sha256": result.last_sha256,
                "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
                "reconstruction_loss": result.reconstruction_loss,
                "evaluation": asdict(result.evaluation) if result.evaluation is not None else None,
                "history": result.history,
                "world_size": world,
            }
            (Path(job["run_dir"]) / RESULT_NAME).write_text(json.dumps(summary), encoding="utf-8")
        return result
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """`python -m models.training.distributed JOB.json` (under torchrun)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write(
            "usage: torchrun --nproc-per-node N -m models.training.distributed RUN/distributed-job.json\n"
        )
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s rank{os.environ.get('RANK', '0')} %(levelname)s %(name)s: %(message)s",
    )
    try:
        run_job(Path(args[0]))
    except ModelError as exc:  # bad data or settings: one line, like the CLI
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
