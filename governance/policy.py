"""The policy: a versioned YAML file that maps a job's check scores to an outcome.

Each score has two bounds: past `review_*` a person must look; past `reject_*` the job is rejected.
Format flags (duration, fps, size) that are false reject. The motion rules (does the output follow the
driving video?) and the leak rules (does it look like the driver rather than the portrait?) are
optional sections, so a policy written before them still loads and judges what it always judged; a
policy that has them sends an output whose motion or leak score was not measured to a person. The policy version in force is stored with
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
    fidelity_worst5_distance: float = Field(
        ge=0, description="output frames vs portrait, mean of the worst 5%"
    )
    missing_face_ratio: float = Field(ge=0, le=1, description="share of sampled output frames with no face")
    sharpness_ratio: float = Field(ge=0, description="output sharpness / portrait sharpness")
    flicker_outlier_ratio: float = Field(
        ge=0, le=1, description="share of frames with outlier brightness jumps"
    )
    longest_frozen_run: int = Field(ge=0, description="longest run of identical consecutive frames")
    colour_drift: float = Field(ge=0, description="mean colour distance of output vs portrait (Lab, 0-100)")
    duration_ok: bool
    fps_ok: bool
    size_ok: bool
    # Motion fidelity, driving crops vs output (pipeline.checks.motion); None: not measured.
    motion_mean_distance: float | None = Field(
        default=None, ge=0, description="landmark motion difference, inter-ocular units, mean"
    )
    motion_worst5_distance: float | None = Field(
        default=None, ge=0, description="the same, mean of the worst 5%"
    )
    mouth_correlation: float | None = Field(default=None, ge=-1, le=1, description="mouth opening series")
    mouth_mean_difference: float | None = Field(default=None, ge=0, description="mouth opening, mean |diff|")
    eyes_correlation: float | None = Field(default=None, ge=-1, le=1, description="eye opening series")
    eyes_mean_difference: float | None = Field(default=None, ge=0, description="eye opening, mean |diff|")
    yaw_correlation: float | None = Field(default=None, ge=-1, le=1, description="head yaw series")
    yaw_mean_difference: float | None = Field(
        default=None, ge=0, description="head yaw, mean |diff|, degrees"
    )
    pitch_correlation: float | None = Field(default=None, ge=-1, le=1, description="head pitch series")
    pitch_mean_difference: float | None = Field(
        default=None, ge=0, description="head pitch, mean |diff|, degrees"
    )
    roll_correlation: float | None = Field(default=None, ge=-1, le=1, description="head roll series")
    roll_mean_difference: float | None = Field(
        default=None, ge=0, description="head roll, mean |diff|, degrees"
    )
    # Driver identity leak (pipeline.checks.leak); None: not measured.
    driver_portrait_distance: float | None = Field(
        default=None, ge=0, description="driver vs portrait identity"
    )
    leak_margin: float | None = Field(
        default=None, ge=-2, le=2, description="output's distance to the driver minus to the portrait, mean"
    )

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


class SignedLowerBound(_Strict):
    """Higher is better, for scores that may be negative (correlations, margins): as `LowerBound`."""

    review_below: float = Field(ge=-2, le=2)
    reject_below: float = Field(ge=-2, le=2)

    @model_validator(mode="after")
    def _ordered(self) -> SignedLowerBound:
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


class MotionRules(_Strict):
    """Bounds on how closely the output follows the driving video (docs/motion-checks.md)."""

    motion_mean_distance: UpperBound
    motion_worst5_distance: UpperBound
    mouth_correlation: SignedLowerBound
    mouth_mean_difference: UpperBound
    eyes_correlation: SignedLowerBound
    eyes_mean_difference: UpperBound
    yaw_correlation: SignedLowerBound
    yaw_mean_difference: UpperBound
    pitch_correlation: SignedLowerBound
    pitch_mean_difference: UpperBound
    roll_correlation: SignedLowerBound
    roll_mean_difference: UpperBound


class LeakRules(_Strict):
    """When the driver is another person: how much nearer the portrait than the driver the output must be."""

    driver_same_person_distance: float = Field(
        ge=0, description="driver this close to the portrait: no leak check"
    )
    leak_margin: SignedLowerBound


class ScoreVerdict(_Strict):
    """One score against its bounds: `ok`, `review`, `reject`, or `skipped` (not applicable)."""

    name: str
    score: float | bool | None
    verdict: str
    bound: str
    reason: str | None = None


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
    motion: MotionRules | None = None
    leak: LeakRules | None = None

    @property
    def version_label(self) -> str:
        """`<name>@v<version>`: the form stored in `jobs.policy_version` and decisions."""
        return f"{self.name}@v{self.version}"

    @property
    def digest(self) -> str:
        """SHA-256 over the rules, so two files claiming one version can be told apart."""
        text = json.dumps(
            self.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":")
        )
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

    def verdicts(self, scores: CheckScores) -> list[ScoreVerdict]:
        """Every score the policy judges, with its verdict and bound (what the review page and `likeness
        check` show; `evaluate` decides from the same list)."""
        found: list[ScoreVerdict] = []
        for flag in ("duration_ok", "fps_ok", "size_ok"):
            ok = bool(getattr(scores, flag))
            found.append(
                ScoreVerdict(
                    name=flag,
                    score=ok,
                    verdict="ok" if ok else "reject",
                    bound="must be true",
                    reason=None if ok else f"format check failed: {flag.removesuffix('_ok')}",
                )
            )
        groups: list[BaseModel] = [self.identity, self.artifacts, *([self.motion] if self.motion else [])]
        for group in groups:
            for name, bound in group:
                found.append(_judge(name, getattr(scores, name), bound))
        if self.leak is not None:
            found.extend(self._leak_verdicts(scores, self.leak))
        return found

    @staticmethod
    def _leak_verdicts(scores: CheckScores, rules: LeakRules) -> list[ScoreVerdict]:
        same, driver = rules.driver_same_person_distance, scores.driver_portrait_distance
        if driver is None:
            return [
                ScoreVerdict(
                    name="leak_margin",
                    score=scores.leak_margin,
                    verdict="review",
                    bound="measured",
                    reason="driver_portrait_distance not measured",
                )
            ]
        if driver <= same:
            return [
                ScoreVerdict(
                    name="leak_margin",
                    score=scores.leak_margin,
                    verdict="skipped",
                    bound=f"driver is the subject ({driver:g} <= {same:g})",
                )
            ]
        return [_judge("leak_margin", scores.leak_margin, rules.leak_margin)]

    def evaluate(self, scores: CheckScores) -> PolicyDecision:
        """Outcome for `scores`: any reject reason rejects; else any review reason (or always_review) flags."""
        judged = self.verdicts(scores)
        rejects = [v.reason for v in judged if v.verdict == "reject" and v.reason]
        reviews = [v.reason for v in judged if v.verdict == "review" and v.reason]
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
            thresholds={
                "rules": self.model_dump(
                    mode="json", include={"identity", "artifacts", "motion", "leak", "always_review"}
                ),
                "digest": self.digest,
            },
        )


def _judge(name: str, value: float | None, bound: BaseModel) -> ScoreVerdict:
    """One score against an upper or lower bound; an unmeasured score goes to a person."""
    if isinstance(bound, UpperBound):
        text = f"review > {bound.review_above:g}, reject > {bound.reject_above:g}"
    elif isinstance(bound, LowerBound | SignedLowerBound):
        text = f"review < {bound.review_below:g}, reject < {bound.reject_below:g}"
    else:  # pragma: no cover - every rule is one of the bounds above
        raise TypeError(f"{name}: unknown bound {type(bound).__name__}")
    if value is None:
        return ScoreVerdict(
            name=name, score=None, verdict="review", bound=text, reason=f"{name} not measured"
        )
    number = float(value)
    if isinstance(bound, UpperBound):
        if number > bound.reject_above:
            return ScoreVerdict(
                name=name,
                score=value,
                verdict="reject",
                bound=text,
                reason=f"{name} {number:g} > reject bound {bound.reject_above:g}",
            )
        if number > bound.review_above:
            return ScoreVerdict(
                name=name,
                score=value,
                verdict="review",
                bound=text,
                reason=f"{name} {number:g} > review bound {bound.review_above:g}",
            )
        return ScoreVerdict(name=name, score=value, verdict="ok", bound=text)
    assert isinstance(bound, LowerBound | SignedLowerBound)
    if number < bound.reject_below:
        return ScoreVerdict(
            name=name,
            score=value,
            verdict="reject",
            bound=text,
            reason=f"{name} {number:g} < reject bound {bound.reject_below:g}",
        )
    if number < bound.review_below:
        return ScoreVerdict(
            name=name,
            score=value,
            verdict="review",
            bound=text,
            reason=f"{name} {number:g} < review bound {bound.review_below:g}",
        )
    return ScoreVerdict(name=name, score=value, verdict="ok", bound=text)


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
