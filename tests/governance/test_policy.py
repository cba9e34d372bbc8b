"""The policy: versioned YAML, validated, mapping scores to outcomes; malformed files name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from governance.enums import Outcome
from governance.errors import PolicyError
from governance.policy import DEFAULT_POLICY_PATH, CheckScores, load_policy
from tests.governance.helpers import LEAK_SCORES, MOTION_SCORES, good_scores

MOTION_AND_LEAK = (*MOTION_SCORES, *LEAK_SCORES)


def write_policy(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    mutate(data)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_policy_loads_with_its_version() -> None:
    policy = load_policy()
    assert policy.version_label == "default@v2"
    thresholds = policy.check_thresholds()
    assert thresholds.binding_max_distance == policy.identity.binding_distance.review_above
    assert thresholds.min_sharpness_ratio == policy.artifacts.sharpness_ratio.review_below
    assert isinstance(thresholds.max_frozen_run, int)


@pytest.mark.parametrize(
    ("overrides", "outcome", "reason"),
    [
        ({}, Outcome.auto_approve, None),
        ({"colour_drift": 7.0}, Outcome.needs_review, "colour_drift 7 > review bound 6"),
        ({"colour_drift": 13.0}, Outcome.reject, "colour_drift 13 > reject bound 12"),
        ({"sharpness_ratio": 0.5}, Outcome.needs_review, "sharpness_ratio 0.5 < review bound 0.6"),
        ({"sharpness_ratio": 0.2}, Outcome.reject, "sharpness_ratio 0.2 < reject bound 0.35"),
        ({"binding_distance": 0.08}, Outcome.reject, "binding_distance 0.08 > reject bound 0.07"),
        ({"longest_frozen_run": 9}, Outcome.needs_review, "longest_frozen_run 9 > review bound 8"),
        ({"fps_ok": False}, Outcome.reject, "format check failed: fps"),
        ({"missing_face_ratio": 0.05, "size_ok": False}, Outcome.reject, "format check failed: size"),
    ],
)
def test_evaluate_maps_scores_to_outcomes(overrides: dict, outcome: Outcome, reason: str | None) -> None:
    decision = load_policy().evaluate(good_scores(**overrides))
    assert decision.outcome == outcome
    assert decision.policy_version == "default@v2"
    assert decision.thresholds["digest"] == load_policy().digest
    if reason is None:
        assert decision.reasons == []
    else:
        assert reason in decision.reasons


def test_always_review_flags_clean_jobs(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, lambda d: d.update(always_review=True, version=3)))
    decision = policy.evaluate(good_scores())
    assert (decision.outcome, decision.policy_version) == (Outcome.needs_review, "default@v3")
    assert policy.digest != load_policy().digest


def _drop(path: list[str]):  # type: ignore[no-untyped-def]
    def mutate(data: dict) -> None:
        for key in path[:-1]:
            data = data[key]
        del data[path[-1]]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_drop(["version"]), "field version: Field required"),
        (_drop(["identity", "binding_distance"]), "field identity.binding_distance: Field required"),
        (lambda d: d.update(version="one"), "field version: Input should be a valid integer"),
        (
            lambda d: d["artifacts"].update(colour_drift={"review_above": 6, "reject_above": 3}),
            "field artifacts.colour_drift: Value error, reject_above must be >= review_above",
        ),
        (
            lambda d: d["artifacts"].update(sharpness_ratio={"review_below": 0.3, "reject_below": 0.5}),
            "field artifacts.sharpness_ratio: Value error, reject_below must be <= review_below",
        ),
        (
            lambda d: d["identity"].update(binding_distanse={"review_above": 1, "reject_above": 2}),
            "field identity.binding_distanse: Extra inputs are not permitted",
        ),
        (
            lambda d: d["identity"]["missing_face_ratio"].update(review_above=-1),
            "field identity.missing_face_ratio.review_above: Input should be greater than or equal to 0",
        ),
        (lambda d: d.update(name="Has Spaces"), "field name: String should match pattern"),
        (_drop(["motion", "yaw_correlation"]), "field motion.yaw_correlation: Field required"),
        (
            lambda d: d["motion"]["mouth_correlation"].update(review_below=3),
            "field motion.mouth_correlation.review_below: Input should be less than or equal to 2",
        ),
        (
            lambda d: d["motion"].update(mouth_correlation={"review_below": 0.2, "reject_below": 0.5}),
            "field motion.mouth_correlation: Value error, reject_below must be <= review_below",
        ),
        (
            lambda d: d["motion"]["motion_mean_distance"].update(reject_above="far"),
            "field motion.motion_mean_distance.reject_above: Input should be a valid number",
        ),
        (
            lambda d: d["motion"].update(lip_sync={"review_below": 0.6, "reject_below": 0.3}),
            "field motion.lip_sync: Extra inputs are not permitted",
        ),
        (
            _drop(["leak", "driver_same_person_distance"]),
            "field leak.driver_same_person_distance: Field required",
        ),
        (
            lambda d: d["leak"].update(leak_margin={"review_above": 0.1, "reject_above": 0.2}),
            "field leak.leak_margin.review_below: Field required",
        ),
    ],
)
def test_malformed_policy_names_the_field(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = write_policy(tmp_path, mutate)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"policy {path}: {message}")
    assert "\n" not in str(caught.value)


def test_unreadable_policies(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy file .*missing.yaml not found"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: default\nversion: [1\n")
    with pytest.raises(PolicyError, match=r"is not valid YAML at line \d+"):
        load_policy(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(PolicyError, match="is not a mapping of fields"):
        load_policy(listy)


def test_check_scores_refuse_nonsense() -> None:
    with pytest.raises(ValidationError, match="missing_face_ratio"):
        good_scores(missing_face_ratio=1.5)
    with pytest.raises(ValidationError, match="colour_drift is not a finite number"):
        good_scores(colour_drift=float("inf"))
    with pytest.raises(ValidationError, match="extra_score"):
        CheckScores.model_validate({**good_scores().model_dump(), "extra_score": 1})


@pytest.mark.parametrize(
    ("overrides", "outcome", "reason"),
    [
        (
            {"motion_mean_distance": 0.03},
            Outcome.needs_review,
            "motion_mean_distance 0.03 > review bound 0.025",
        ),
        ({"motion_mean_distance": 0.2}, Outcome.reject, "motion_mean_distance 0.2 > reject bound 0.05"),
        ({"mouth_correlation": 0.1}, Outcome.reject, "mouth_correlation 0.1 < reject bound 0.3"),
        ({"yaw_mean_difference": 5.0}, Outcome.needs_review, "yaw_mean_difference 5 > review bound 4"),
        ({"mouth_correlation": None}, Outcome.needs_review, "mouth_correlation not measured"),
        # Another person drove: the output must stay nearer the portrait than the driver.
        ({"driver_portrait_distance": 0.15, "leak_margin": 0.1}, Outcome.auto_approve, None),
        (
            {"driver_portrait_distance": 0.15, "leak_margin": 0.02},
            Outcome.needs_review,
            "leak_margin 0.02 < review bound 0.03",
        ),
        (
            {"driver_portrait_distance": 0.15, "leak_margin": -0.05},
            Outcome.reject,
            "leak_margin -0.05 < reject bound 0",
        ),
        (
            {"driver_portrait_distance": 0.15, "leak_margin": None},
            Outcome.needs_review,
            "leak_margin not measured",
        ),
        ({"driver_portrait_distance": None}, Outcome.needs_review, "driver_portrait_distance not measured"),
        # The driver is the subject: a margin near zero is expected and not judged.
        ({"driver_portrait_distance": 0.03, "leak_margin": -0.01}, Outcome.auto_approve, None),
    ],
)
def test_motion_and_leak_rules(overrides: dict, outcome: Outcome, reason: str | None) -> None:
    policy = load_policy()
    assert policy.motion is not None and policy.leak is not None
    scores = good_scores(**overrides)
    decision = policy.evaluate(scores)
    assert decision.outcome == outcome, decision.reasons
    assert decision.reasons == [] if reason is None else reason in decision.reasons
    rows = {v.name: v for v in policy.verdicts(scores)}
    assert {"motion_mean_distance", "mouth_correlation", "roll_mean_difference", "leak_margin"} <= set(rows)
    assert decision.thresholds["rules"]["motion"]["mouth_correlation"] == {
        "review_below": 0.6,
        "reject_below": 0.3,
    }


def test_a_policy_without_motion_rules_loads_and_leaves_motion_unjudged(tmp_path: Path) -> None:
    def old(data: dict) -> None:
        data.update(version=1)
        del data["motion"], data["leak"]

    policy = load_policy(write_policy(tmp_path, old))
    assert policy.motion is None and policy.leak is None
    bare = good_scores().model_dump(include=set(CheckScores.model_fields) - set(MOTION_AND_LEAK))
    decision = policy.evaluate(CheckScores.model_validate(bare))
    assert decision.outcome == Outcome.auto_approve
    assert decision.thresholds["rules"]["motion"] is None
    # the same scores under the v2 rules are unmeasured motion: a person looks
    assert load_policy().evaluate(CheckScores.model_validate(bare)).outcome == Outcome.needs_review


def test_verdicts_list_each_judged_score_with_its_bound() -> None:
    rows = {v.name: v for v in load_policy().verdicts(good_scores(colour_drift=7.0, fps_ok=False))}
    assert (
        rows["colour_drift"].verdict == "review" and rows["colour_drift"].bound == "review > 6, reject > 12"
    )
    assert rows["fps_ok"].verdict == "reject" and rows["fps_ok"].bound == "must be true"
    assert rows["sharpness_ratio"].bound == "review < 0.6, reject < 0.35"
    assert rows["leak_margin"].verdict == "skipped"


def test_check_scores_refuse_a_correlation_out_of_range() -> None:
    with pytest.raises(ValidationError, match="mouth_correlation"):
        good_scores(mouth_correlation=1.5)
