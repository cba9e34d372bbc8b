"""The policy: versioned YAML, validated, mapping scores to outcomes; malformed files name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from governance.enums import Outcome
from governance.errors import PolicyError
from governance.policy import DEFAULT_POLICY_PATH, CheckScores, load_policy
from tests.governance.helpers import good_scores


def write_policy(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    mutate(data)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_policy_loads_with_its_version() -> None:
    policy = load_policy()
    assert policy.version_label == "default@v1"
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
    assert decision.policy_version == "default@v1"
    assert decision.thresholds["digest"] == load_policy().digest
    if reason is None:
        assert decision.reasons == []
    else:
        assert reason in decision.reasons


def test_always_review_flags_clean_jobs(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, lambda d: d.update(always_review=True, version=2)))
    decision = policy.evaluate(good_scores())
    assert (decision.outcome, decision.policy_version) == (Outcome.needs_review, "default@v2")
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
        (lambda d: d["artifacts"].update(colour_drift={"review_above": 6, "reject_above": 3}),
         "field artifacts.colour_drift: Value error, reject_above must be >= review_above"),
        (lambda d: d["artifacts"].update(sharpness_ratio={"review_below": 0.3, "reject_below": 0.5}),
         "field artifacts.sharpness_ratio: Value error, reject_below must be <= review_below"),
        (lambda d: d["identity"].update(binding_distanse={"review_above": 1, "reject_above": 2}),
         "field identity.binding_distanse: Extra inputs are not permitted"),
        (lambda d: d["identity"]["missing_face_ratio"].update(review_above=-1),
         "field identity.missing_face_ratio.review_above: Input should be greater than or equal to 0"),
        (lambda d: d.update(name="Has Spaces"), "field name: String should match pattern"),
    ],
)  # fmt: skip
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
