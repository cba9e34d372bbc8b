"""The policy: a versioned YAML file that maps a job's check scores to an outcome.

Each score has two bounds: past `review_*` a person must look; past `reject_*` the job is rejected.
Format flags (duration, fps, size) that are false reject. The policy version in force is stored with
every decision. A malformed file refuses to load with a message naming the field.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from governance.enums import Outcome
from governance.errors import PolicyError

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "policies" / "default.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckScores(_Strict):
    """What the pipeline's checks measured on one output. Distances are Dlib cosine distances."""

    binding_distance: float = Field(ge=0, description="portrait vs the subject's likeness reference")
    fidelity_mean_distance: float = Field(ge=0, description="output frames vs portrait, mean")
    fidelity_worst5_distance: float = Field(ge=0, description="output frames vs portrait, mean of the worst 5%")
    missing_face_ratio: float = Field(ge=0, le=1, description="share of sampled output frames with no face")
    sharpness_ratio: float = Field(ge=0, description="output sharpness / portrait sharpness")
    flicker_outlier_ratio: float = Field(ge=0, le=1, description="share of frames with outlier brightness jumps")
    longest_frozen_run: int = Field(ge=0, description="longest run of identical consecutive frames")
    colour_drift: float = Field(ge=0, description="mean colour distance of output vs portrait (Lab, 0-100)")
    duration_ok: bool
    fps_ok: bool
    size_ok: bool

    @model_validator(mode="after")
    def _finite(self) -> CheckScores:
        for name, value in self.model_dump().items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} is not a finite number")
        return self


class UpperBound(_Strict):
    """Lower is better: above `review_above` needs review, above `reject_above` rejects."""

    review_above: float = Field(ge=0)
    reject_above: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> UpperBound:
        if self.reject_above < self.review_above:
            raise ValueError("reject_above must be >= review_above")
        return self


class LowerBound(_Strict):
    """Higher is better: below `review_below` needs review, below `reject_below` rejects."""

    review_below: float = Field(ge=0)
    reject_below: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> LowerBound:
        if self.reject_below > self.review_below:
            raise ValueError("reject_below must be <= review_below")
        return self


class IdentityRules(_Strict):
    """Bounds on the identity scores."""

    binding_distance: UpperBound
    fidelity_mean_distance: UpperBound
    fidelity_worst5_distance: UpperBound
    missing_face_ratio: UpperBound


class ArtifactRules(_Strict):
    """Bounds on the artifact scores."""

    sharpness_ratio: LowerBound
    flicker_outlier_ratio: UpperBound
    longest_frozen_run: UpperBound
    colour_drift: UpperBound


class ModelRules(_Strict):
    """What withdrawing a consent that a model's training data depends on does.

    The model always becomes `consent_withdrawn` (no new renders). Its earlier publications are listed
    for the compliance officer; `on_consent_withdrawn` records what the organisation decided for them:
    `keep_published` (the default) or `take_down` (the officer is asked to take each one down).
    """

    on_consent_withdrawn: Literal["keep_published", "take_down"] = "keep_published"


class CheckThresholds(_Strict):
    """The numbers the pipeline's checks take (the review bounds: where a check starts to flag)."""

    binding_max_distance: float
    fidelity_mean_max_distance: float
    fidelity_worst5_max_distance: float
    max_missing_face_ratio: float
    min_sharpness_ratio: float
    max_flicker_outlier_ratio: float
    max_frozen_run: int
    max_colour_drift: float


class PolicyDecision(_Strict):
    """What the policy made of a set of scores, and which policy said so."""

    outcome: Outcome
    reasons: list[str]
    policy_version: str
    thresholds: dict[str, Any]


class Policy(_Strict):
    """A versioned set of rules. `version` is stored with every decision made under it."""

    name: str = Field(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: int = Field(ge=1)
    description: str = ""
    always_review: bool = False  # send every non-rejected job to a person
    identity: IdentityRules
    artifacts: ArtifactRules
    models: ModelRules = Field(default_factory=ModelRules)

    @property
    def version_label(self) -> str:
        """`<name>@v<version>`: the form stored in `jobs.policy_version` and decisions."""
        return f"{self.name}@v{self.version}"

    @property
    def digest(self) -> str:
        """SHA-256 over the rules, so two files claiming one version can be told apart."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def check_thresholds(self) -> CheckThresholds:
        """The plain numbers for the pipeline's checks."""
        ident, art = self.identity, self.artifacts
        return CheckThresholds(
            binding_max_distance=ident.binding_distance.review_above,
            fidelity_mean_max_distance=ident.fidelity_mean_distance.review_above,
            fidelity_worst5_max_distance=ident.fidelity_worst5_distance.review_above,
            max_missing_face_ratio=ident.missing_face_ratio.review_above,
            min_sharpness_ratio=art.sharpness_ratio.review_below,
            max_flicker_outlier_ratio=art.flicker_outlier_ratio.review_above,
            max_frozen_run=int(art.longest_frozen_run.review_above),
            max_colour_drift=art.colour_drift.review_above,
        )

    def evaluate(self, scores: CheckScores) -> PolicyDecision:
        """Outcome for `scores`: any reject reason rejects; else any review reason (or always_review) flags."""
        rejects: list[str] = []
        reviews: list[str] = []
        for flag in ("duration_ok", "fps_ok", "size_ok"):
            if not getattr(scores, flag):
                rejects.append(f"format check failed: {flag.removesuffix('_ok')}")
        upper: dict[str, UpperBound] = {
            "binding_distance": self.identity.binding_distance,
            "fidelity_mean_distance": self.identity.fidelity_mean_distance,
            "fidelity_worst5_distance": self.identity.fidelity_worst5_distance,
            "missing_face_ratio": self.identity.missing_face_ratio,
            "flicker_outlier_ratio": self.artifacts.flicker_outlier_ratio,
            "longest_frozen_run": self.artifacts.longest_frozen_run,
            "colour_drift": self.artifacts.colour_drift,
        }
        for name, bound in upper.items():
            value = float(getattr(scores, name))
            if value > bound.reject_above:
                rejects.append(f"{name} {value:g} > reject bound {bound.reject_above:g}")
            elif value > bound.review_above:
                reviews.append(f"{name} {value:g} > review bound {bound.review_above:g}")
        sharp = self.artifacts.sharpness_ratio
        if scores.sharpness_ratio < sharp.reject_below:
            rejects.append(f"sharpness_ratio {scores.sharpness_ratio:g} < reject bound {sharp.reject_below:g}")
        elif scores.sharpness_ratio < sharp.review_below:
            reviews.append(f"sharpness_ratio {scores.sharpness_ratio:g} < review bound {sharp.review_below:g}")
        if rejects:
            outcome, reasons = Outcome.reject, rejects + reviews
        elif reviews or self.always_review:
            outcome, reasons = Outcome.needs_review, reviews or ["policy sends every job to review"]
        else:
            outcome, reasons = Outcome.auto_approve, []
        return PolicyDecision(
            outcome=outcome,
            reasons=reasons,
            policy_version=self.version_label,
            thresholds={"rules": self.model_dump(mode="json", include={"identity", "artifacts", "always_review"}),
                        "digest": self.digest},
        )  # fmt: skip


def _field_path(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"]) or "<top level>"


def parse_policy(data: Any, *, source: str = "<policy>") -> Policy:
    """Validate already-parsed YAML; the error names the first bad field."""
    if not isinstance(data, dict):
        raise PolicyError(f"policy {source} is not a mapping of fields")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PolicyError(f"policy {source}: field {_field_path(first)}: {first['msg']}") from None


def load_policy(path: Path | str | None = None) -> Policy:
    """Load and validate a policy file (the default policy when `path` is None)."""
    target = Path(path) if path is not None else DEFAULT_POLICY_PATH
    try:
        raw = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"policy file {target} not found") from None
    except OSError as exc:
        raise PolicyError(f"policy file {target} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PolicyError(f"policy file {target} is not UTF-8 text (a binary file?)") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PolicyError(f"policy file {target} is not valid YAML{where}") from None
    return parse_policy(data, source=str(target))
