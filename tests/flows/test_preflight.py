"""Configuration is checked once, before any job is claimed: one line naming the setting, no job touched.

Each bad policy or checkpoint is built here and handed to the real `likeness batch run` (Typer's runner,
in process) on a submitted batch: the command must print exactly one error line naming the setting and
the cause, exit non-zero, and leave the job `submitted` with nothing but its submission on record and no
workspace on disk. Fixing the setting then runs the job normally (it was not consumed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from console.cli.app import app
from governance.enums import JobState
from governance.policy import DEFAULT_POLICY_PATH
from models.config import tiny
from models.loading import save_checkpoint
from tests.fixtures.model import build_tiny_model
from tests.flows.conftest import FlowWorld, cli_env


class CodeInPickle:
    """Unpickling this would create a marker file: a checkpoint that runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def bad_policy(kind: str, folder: Path) -> Path:
    path = folder / f"policy-{kind}.yaml"
    rules = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    if kind == "yaml":
        path.write_text("name: x\nversion: [1,\n", encoding="utf-8")
    elif kind == "type":
        rules["version"] = "one"
        path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    elif kind == "bounds":
        rules["identity"]["binding_distance"] = {"review_above": 0.5, "reject_above": 0.1}
        path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    return path  # "missing": never written


POLICY_CASES = {
    "yaml": "is not valid YAML at line",
    "type": "field version: Input should be a valid integer",
    "bounds": "field identity.binding_distance: Value error, reject_above must be >= review_above",
    "binary": "is not UTF-8 text",
    "missing": "not found",
}


def bad_checkpoint(kind: str, folder: Path, good: Path) -> Path:
    path = folder / f"ckpt-{kind}.pth.tar"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif kind == "architecture":
        other = build_tiny_model(dataclasses.replace(tiny(), num_kp=6))
        save_checkpoint(path, config=tiny(), generator=other.generator, kp_detector=other.kp_detector)
    elif kind == "code":
        torch.save({"generator": CodeInPickle(folder / "code-ran"), "kp_detector": {}}, path)
    return path  # "missing": never written


CHECKPOINT_CASES = {
    "missing": "does not exist or is not a file",
    "empty": "is empty (0 bytes)",
    "truncated": "is not a readable torch checkpoint",
    "architecture": "(another architecture or config?)",
    "code": "is not a readable torch checkpoint",
}


def run_batch(world: FlowWorld, batch_id: str, **overrides: str) -> tuple[int, list[str]]:
    env = {**cli_env(world), **overrides}
    result = CliRunner().invoke(app, ["batch", "run", batch_id], env=env)
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()]


def assert_untouched(world: FlowWorld, job_id: str) -> None:
    assert world.state(job_id) == JobState.submitted
    assert world.job(job_id).last_error is None
    assert world.actions(job_id) == ["job.submitted"]
    work = world.rt.settings.var_dir / "work"
    assert not work.exists() or list(work.iterdir()) == []


@pytest.mark.slow
def test_bad_configuration_is_one_line_before_any_job_is_claimed(flow_world: FlowWorld) -> None:
    world = flow_world
    world.add_subject("S-1")
    world.grant("S-1")
    batch_id = world.submit([{"subject": "S-1"}])
    [job_id] = world.job_ids(batch_id)
    folder = world.root / "bad-config"
    folder.mkdir()
    cases: list[tuple[str, dict[str, str], str, str]] = []
    for kind, cause in POLICY_CASES.items():
        cases.append(
            (
                f"policy {kind}",
                {"LIKENESS_POLICY_PATH": str(bad_policy(kind, folder))},
                "LIKENESS_POLICY_PATH",
                cause,
            )
        )
    good = world.rt.settings.mcnet_checkpoint
    assert good is not None
    for kind, cause in CHECKPOINT_CASES.items():
        cases.append(
            (
                f"checkpoint {kind}",
                {"LIKENESS_MCNET_CHECKPOINT": str(bad_checkpoint(kind, folder, good))},
                "LIKENESS_MCNET_CHECKPOINT",
                cause,
            )
        )
    cases.append(
        (
            "checkpoint sha256",
            {"LIKENESS_MCNET_CHECKPOINT_SHA256": "0" * 64},
            "LIKENESS_MCNET_CHECKPOINT_SHA256",
            "sha256 mismatch",
        )
    )

    for name, overrides, setting, cause in cases:
        code, lines = run_batch(world, batch_id, **overrides)
        assert code == 1, name
        assert len(lines) == 1, (name, lines)
        assert lines[0].startswith(f"error: invalid {setting}: "), (name, lines)
        assert cause in lines[0], (name, lines)
        assert_untouched(world, job_id)
    assert not (folder / "code-ran").exists()  # the pickle was refused without running its code

    # Fixed: the same job runs (it was never consumed).
    code, lines = run_batch(world, batch_id)
    assert code == 0, lines
    assert world.state(job_id) == JobState.published


def test_preflight_passes_and_keeps_the_loaded_parts(flow_world: FlowWorld) -> None:
    from flows.runtime.preflight import preflight

    preflight(flow_world.rt)
    animator: Callable[[], object] = lambda: flow_world.rt._parts["animator"]  # noqa: E731
    first = animator()
    preflight(flow_world.rt)
    assert animator() is first  # loaded once, reused by the jobs
