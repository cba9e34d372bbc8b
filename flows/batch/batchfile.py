"""Batch files: the YAML or CSV a content team writes, read into validated, typed job requests.

A batch file says who (a subject's reference), from what (a portrait and a driving video, paths
relative to the file), and for which use (purpose, channel, territory). Reading it does no I/O beyond
the file itself: whether the media may be read, and whether a consent covers the use, is decided
later, by `flows.batch.submission` and the render flow. Any problem refuses the whole file with one line
naming the row and the field, so a half-understood batch is never submitted. A job requested twice
(same subject, media, use and seed) refuses the file naming the jobs (and CSV lines) that repeat. A
UTF-8 byte-order mark, as spreadsheet programs write it, is accepted.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_JOBS_PER_BATCH = 1000
MAX_FILE_BYTES = 1024 * 1024
CSV_COLUMNS = ("subject", "portrait", "driving", "purpose", "channel", "territory", "seed")
REQUIRED_CSV_COLUMNS = {"subject", "portrait", "driving", "purpose", "channel", "territory"}


class BatchFileError(ValueError):
    """The batch file cannot be read as a batch; the message names the file, the row and the field."""


class JobRequest(BaseModel):
    """One requested video. Paths are resolved against the batch file's folder."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    subject: str = Field(min_length=1, max_length=100, description="the subject's reference (or id)")
    portrait: Path
    driving: Path
    purpose: str = Field(min_length=1, max_length=64)
    channel: str = Field(min_length=1, max_length=64)
    territory: str = Field(min_length=2, max_length=16)
    seed: int | None = Field(default=None, ge=0, lt=2**63)

    @field_validator("purpose", "channel")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("territory")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class BatchRequest(BaseModel):
    """A named set of job requests, as submitted by one operator."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    jobs: list[JobRequest] = Field(min_length=1, max_length=MAX_JOBS_PER_BATCH)


def read_batch_file(path: Path, *, name: str | None = None) -> BatchRequest:
    """Read a `.yaml`/`.yml` or `.csv` batch file; relative media paths are made absolute.

    Args:
        path: the batch file.
        name: overrides the batch name (default: the file's `name:` key, or its stem for CSV).

    Raises:
        BatchFileError: unreadable file, unknown format, or a row that does not validate.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BatchFileError(f"batch file {path}: cannot be read ({exc.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise BatchFileError(f"batch file {path}: {size} bytes is more than {MAX_FILE_BYTES}")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a leading byte-order mark is not part of the text
    except UnicodeDecodeError as exc:
        raise BatchFileError(f"batch file {path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise BatchFileError(f"batch file {path}: cannot be read ({exc.strerror})") from None
    suffix = path.suffix.lower()
    lines: list[int] | None = None
    if suffix in {".yaml", ".yml"}:
        raw = _parse_yaml(path, text)
    elif suffix == ".csv":
        rows, lines = _parse_csv(path, text)
        raw = {"name": path.stem, "jobs": rows}
    else:
        raise BatchFileError(f"batch file {path}: unknown format {suffix or '(none)'}; use .yaml or .csv")
    if name:
        raw["name"] = name
    raw.setdefault("name", path.stem)
    base = path.resolve().parent
    if isinstance(raw.get("jobs"), list):
        raw["jobs"] = [_resolve_paths(job, base) for job in raw["jobs"]]
    try:
        request = BatchRequest.model_validate(raw)
    except ValidationError as exc:
        raise BatchFileError(f"batch file {path}: {_first_error(exc)}") from None
    _refuse_duplicates(path, request, lines)
    return request


def _refuse_duplicates(path: Path, request: BatchRequest, lines: list[int] | None) -> None:
    """One line naming the first request that repeats an earlier one (jobs, and lines for CSV)."""
    seen: dict[tuple[object, ...], int] = {}
    repeats: dict[int, list[int]] = {}
    for index, job in enumerate(request.jobs):
        key = (
            job.subject,
            job.portrait.resolve(),
            job.driving.resolve(),
            job.purpose,
            job.channel,
            job.territory,
            job.seed,
        )
        if key in seen:
            repeats.setdefault(seen[key], [seen[key]]).append(index)
        else:
            seen[key] = index
    if not repeats:
        return
    first, group = next(iter(repeats.items()))
    job = request.jobs[first]
    numbers = " and ".join(str(i + 1) for i in group)
    where = f" (lines {' and '.join(str(lines[i]) for i in group)})" if lines is not None else ""
    more = f"; {len(repeats) - 1} more request(s) repeat too" if len(repeats) > 1 else ""
    raise BatchFileError(
        f"batch file {path}: jobs {numbers}{where} repeat the same request (subject {job.subject}, "
        f"{job.purpose}/{job.channel}/{job.territory}); remove the duplicates{more}"
    )


def _parse_yaml(path: Path, text: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise BatchFileError(f"batch file {path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise BatchFileError(f"batch file {path}: expected a mapping with `name` and `jobs`")
    return dict(raw)


def _parse_csv(path: Path, text: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The rows with a value, and the line each one ends on (for messages)."""
    reader = csv.DictReader(io.StringIO(text))
    columns = {c.strip() for c in reader.fieldnames or []}
    missing = REQUIRED_CSV_COLUMNS - columns
    if missing:
        raise BatchFileError(f"batch file {path}: missing column(s) {', '.join(sorted(missing))}")
    unknown = columns - set(CSV_COLUMNS)
    if unknown:
        raise BatchFileError(f"batch file {path}: unknown column(s) {', '.join(sorted(unknown))}")
    rows, lines = [], []
    for row in reader:
        cleaned = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not any(cleaned.values()):
            continue
        if not cleaned.get("seed"):
            cleaned.pop("seed", None)
        rows.append(cleaned)
        lines.append(reader.line_num)
    return rows, lines


def _resolve_paths(job: Any, base: Path) -> Any:
    if not isinstance(job, dict):
        return job
    resolved = dict(job)
    for key in ("portrait", "driving"):
        value = resolved.get(key)
        if isinstance(value, str) and value:
            candidate = Path(value).expanduser()
            resolved[key] = candidate if candidate.is_absolute() else base / candidate
    return resolved


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = error["loc"]
    if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int):
        field = ".".join(str(p) for p in loc[2:]) or "job"
        where = f"job {loc[1] + 1}, field `{field}`"
    else:
        where = "field `" + ".".join(str(p) for p in loc) + "`"
    count = exc.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return f"{where}: {error['msg']}{more}"
