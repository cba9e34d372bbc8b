"""governance.models_registry on SQLite and PostgreSQL: training consent, lineage, status, withdrawal."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from governance import consent, models_registry, publications
from governance.enums import AssetKind, ModelStatus
from governance.errors import ConsentExpired, ConsentScopeError, InvalidTransition, RoleRequired
from governance.models_registry import ModelNotRenderable, TrainingClip
from governance.schema import Asset, AuditEvent, ModelTrainingClip, RegisteredModel
from governance.subjects import add_subject
from governance.types import utcnow
from governance.uow import unit_of_work
from tests.governance.conftest import world  # noqa: F401 - the shared governance world fixture
from tests.governance.helpers import World, audit_actions, count

MODEL_SHA = "c" * 64
CONFIG = {"image_size": 64, "num_kp": 5}
OPERATOR = "operator@example.org"
COMPLIANCE = "compliance@example.org"


def clip(subject_id: str, digest: str, split: str = "train") -> TrainingClip:
    return TrainingClip(
        sha256=digest,
        subject_id=subject_id,
        split=split,
        frames=12,
        bucket="inputs",
        object_key=f"training/{digest}.pt",
        size_bytes=1234,
        origin="talking.mp4",
    )


def register(w: World, clips: list[TrainingClip], *, sha: str = MODEL_SHA, version: str = "1") -> str:
    with unit_of_work(w.sf) as session:
        model = models_registry.register_model(
            session,
            name="mcnet-team",
            version=version,
            sha256=sha,
            config=CONFIG,
            actor_email=OPERATOR,
            clips=clips,
        )
        return model.id


def training_grant(w: World, **overrides: object) -> str:
    return w.grant(purposes=["model_training"], **overrides).id


def test_training_without_a_training_consent_is_refused_and_audited(world: World) -> None:  # noqa: F811
    world.grant()  # advertising only
    with pytest.raises(
        ConsentScopeError, match="training refused: no consent of subject .* 'model_training'"
    ):
        register(world, [clip(world.subject, "7" * 64)])
    assert count(world.sf, RegisteredModel) == 0 and count(world.sf, ModelTrainingClip) == 0
    with world.sf() as session:
        assert session.scalars(select(Asset).where(Asset.kind == AssetKind.training_clip)).all() == []
        refusal = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert refusal is not None and refusal.action == "training.refused"
        assert refusal.subject_id == world.subject and refusal.details["error"] == "ConsentScopeError"


def test_an_expired_training_consent_is_refused(world: World) -> None:  # noqa: F811
    now = utcnow()
    training_grant(world, valid_from=now - timedelta(days=30), valid_until=now + timedelta(days=1))
    with (
        unit_of_work(world.sf) as session,
        pytest.raises(ConsentExpired, match="model_training consent .* expired"),
    ):
        models_registry.check_training_consents(
            session, subject_ids=[world.subject], actor=OPERATOR, at=now + timedelta(days=2)
        )


def test_registration_records_lineage_and_assets(world: World) -> None:  # noqa: F811
    granted = training_grant(world)
    model_id = register(world, [clip(world.subject, "7" * 64), clip(world.subject, "8" * 64, "heldout")])
    with world.sf() as session:
        rows = models_registry.lineage(session, model_id)
        assert [(c.sha256, c.split, s.id, k.id) for c, s, k in rows] == [
            ("8" * 64, "heldout", world.subject, granted),
            ("7" * 64, "train", world.subject, granted),
        ]
        kinds = session.scalars(select(Asset.kind).where(Asset.sha256.in_(["7" * 64, "8" * 64]))).all()
        assert sorted(kinds) == [AssetKind.training_clip, AssetKind.training_clip]
        model = models_registry.get_model(session, "mcnet-team@1")
        assert model.id == model_id and models_registry.get_model(session, MODEL_SHA.upper()).id == model_id
        assert models_registry.renderable_problem(session, MODEL_SHA) == (model, None)
    assert audit_actions(world.sf)[-3:] == ["asset.registered", "asset.registered", "model.registered"]


def test_same_checkpoint_or_name_cannot_register_twice(world: World) -> None:  # noqa: F811
    register(world, [])
    with pytest.raises(Exception, match="already registered as mcnet-team@1"):
        register(world, [], version="2")
    with pytest.raises(Exception, match="model mcnet-team@1 is already registered"):
        register(world, [], sha="e" * 64)
    assert count(world.sf, RegisteredModel) == 1


def test_unregistered_and_retired_models_cannot_render(world: World) -> None:  # noqa: F811
    with unit_of_work(world.sf) as session:
        model, problem = models_registry.renderable_problem(session, "f" * 64)
        assert model is None and problem is not None and "is not registered" in problem
    with pytest.raises(ModelNotRenderable, match="is not registered"), unit_of_work(world.sf) as session:
        models_registry.require_renderable(session, sha256="f" * 64, actor="system:render", job_id=None)
    assert audit_actions(world.sf)[-1] == "model.refused"
    register(world, [])
    with pytest.raises(RoleRequired), unit_of_work(world.sf) as session:
        models_registry.retire_model(session, ref=MODEL_SHA, actor_email=OPERATOR, reason="old")
    with unit_of_work(world.sf) as session:
        models_registry.retire_model(
            session, ref="mcnet-team@1", actor_email=COMPLIANCE, reason="superseded by v2"
        )
    with world.sf() as session:
        model, problem = models_registry.renderable_problem(session, MODEL_SHA)
        assert model is not None and model.status == ModelStatus.retired
        assert problem == f"model mcnet-team@1 (sha256 {MODEL_SHA[:12]}) is retired: superseded by v2"
    with pytest.raises(InvalidTransition, match="already retired"), unit_of_work(world.sf) as session:
        models_registry.retire_model(session, ref=MODEL_SHA, actor_email=COMPLIANCE, reason="again")
    assert audit_actions(world.sf)[-1] == "model.retired"


def published_job(w: World, consent_id: str, model_sha: str) -> str:
    return w.publish(w.publishing_job(consent_id, model_sha256=model_sha))


def test_revoking_a_training_consent_withdraws_the_model_and_lists_its_publications(world: World) -> None:  # noqa: F811
    training = training_grant(world)
    use = world.grant().id  # advertising: the published video's own consent
    model_id = register(world, [clip(world.subject, "7" * 64)])
    other = register(world, [], sha="e" * 64, version="2")  # trained elsewhere: not affected
    publication = published_job(world, use, MODEL_SHA)
    with unit_of_work(world.sf) as session:
        consent.revoke(
            session, consent_id=training, revoked_by=world.compliance, reason="withdrew training consent"
        )
    with world.sf() as session:
        model = session.get_one(RegisteredModel, model_id)
        assert model.status == ModelStatus.consent_withdrawn
        assert session.get_one(RegisteredModel, other).status == ModelStatus.active
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert (
            event is not None and event.action == "model.consent_withdrawn" and event.resource_id == model_id
        )
        assert event.details["publications"] == [publication]
        assert event.details["on_publications"] == "keep_published"  # the default policy's choice
        assert publications.get_publication(session, publication).taken_down_at is None
        assert [p.id for p in models_registry.publications_of(session, model)] == [publication]
        _, problem = models_registry.renderable_problem(session, MODEL_SHA)
        assert problem is not None and "is consent_withdrawn" in problem
    assert audit_actions(world.sf)[-2:] == ["consent.revoked", "model.consent_withdrawn"]


def test_amended_consent_lineage_still_withdraws(world: World) -> None:  # noqa: F811
    training = training_grant(world)
    register(world, [clip(world.subject, "7" * 64)])
    with unit_of_work(world.sf) as session:
        amended = consent.amend(
            session,
            consent_id=training,
            recorded_by=world.compliance,
            reason="add FR",
            territories=["DE", "FR", "IT"],
        )
        consent.revoke(session, consent_id=amended.id, revoked_by=world.compliance, reason="withdrawn")
    with world.sf() as session:
        assert models_registry.find_by_sha256(session, MODEL_SHA).status == ModelStatus.consent_withdrawn  # type: ignore[union-attr]


def test_each_subject_needs_its_own_training_consent(world: World) -> None:  # noqa: F811
    training_grant(world)
    with unit_of_work(world.sf) as session:
        other = add_subject(session, reference="S-2", display_name="Other", created_by=world.compliance).id
    with pytest.raises(Exception, match=f"training refused: subject {other} has no consent"):
        register(world, [clip(world.subject, "7" * 64), clip(other, "8" * 64)])
    assert count(world.sf, RegisteredModel) == 0


def test_the_policy_in_force_decides_what_the_publications_get(
    world: World,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    from governance.policy import DEFAULT_POLICY_PATH

    rules = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    rules["models"] = {"on_consent_withdrawn": "take_down"}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    monkeypatch.setenv("LIKENESS_POLICY_PATH", str(path))
    training = training_grant(world)
    register(world, [clip(world.subject, "7" * 64)])
    with unit_of_work(world.sf) as session:
        consent.revoke(session, consent_id=training, revoked_by=world.compliance, reason="withdrawn")
    with world.sf() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "model.consent_withdrawn")
        ).one()
        assert event.details["on_publications"] == "take_down" and event.details["publications"] == []
