"""Publish, verify and take down end to end: real SQLite, real SeaweedFS, real ffmpeg, real c2pa."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from flows.publish.delivery import mark_and_publish, trust_anchors
from flows.publish.verify import verify_file
from flows.takedown.steps import takedown_for_consent, takedown_publication
from governance import consent
from governance.enums import JobState
from governance.errors import ConsentRevoked, InvalidTransition, RoleRequired
from governance.schema import Publication
from governance.uow import unit_of_work
from pipeline.storage.objects import ObjectMissingError
from tests.governance.helpers import audit_actions, job_state
from tests.publishing.conftest import PublishWorld, ffmpeg

pytestmark = [pytest.mark.s3, pytest.mark.slow]
ACTOR = "system:publish"


def download(world: PublishWorld, key: str, dest: Path) -> Path:
    world.store.get_file("published", key, dest)
    return dest


def test_publish_then_verify_published_file_and_reencoded_copy(
    publish_world: PublishWorld, tmp_path: Path
) -> None:
    world = publish_world
    result = mark_and_publish(world.runtime, job_id=world.job_id, actor=ACTOR)
    assert result.object_key == f"jobs/{world.job_id}/video.mp4"
    assert job_state(world.sf, world.job_id) == JobState.published
    assert "publication.created" in audit_actions(world.sf)
    stored = world.store.stat("published", result.object_key)
    assert stored.sha256 == result.sha256 != world.render_sha256
    assert stored.metadata["job-id"] == world.job_id
    assert stored.metadata["consent-version"] == "1"
    assert stored.metadata["model-sha256"] == world.model_sha256
    assert stored.metadata["watermark-payload"] == str(result.watermark_payload)
    with world.sf() as session:
        row = session.get(Publication, result.publication_id)
        assert row is not None and (row.c2pa_manifest_label or "").startswith("urn:c2pa:")
        assert row.c2pa_manifest is not None and row.c2pa_manifest["state"] == "Trusted"
        assert row.c2pa_manifest["generation"]["consent_version"] == 1

    published = download(world, result.object_key, tmp_path / "published.mp4")
    anchors = trust_anchors(world.runtime.settings)
    report = verify_file(published, sessions=world.sf, trust=anchors)
    assert report.c2pa_state == "Trusted"
    assert report.watermark_payload == result.watermark_payload
    assert report.verdict == "published" and report.exact_copy
    assert report.manifest_publication_id == result.publication_id
    record = report.publication
    assert record is not None
    assert (record.job_id, record.consent_id, record.consent_version) == (world.job_id, world.consent_id, 1)
    assert record.model_sha256 == world.model_sha256
    assert record.reviewer is None  # auto-approved by the policy: no human reviewer
    assert record.publication_id == result.publication_id

    # A re-upload somewhere else: re-encoded at crf 28 and scaled to half size. The manifest is gone,
    # the watermark still names the publication.
    copy = tmp_path / "copy.mp4"
    ffmpeg("-i", str(published), "-vf", "scale=128:128", "-c:v", "libx264", "-crf", "28", str(copy))
    copied = verify_file(copy, sessions=world.sf, trust=anchors)
    assert copied.c2pa_state == "absent"
    assert copied.watermark_payload == result.watermark_payload
    assert copied.verdict == "published" and not copied.exact_copy
    assert copied.publication is not None and copied.publication.job_id == world.job_id

    # Flipping a byte of the published file breaks the signature.
    data = bytearray(published.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(data)
    assert verify_file(tampered, sessions=world.sf, trust=anchors).c2pa_state == "Invalid"


def test_unmarked_video_is_reported_as_never_published(publish_world: PublishWorld) -> None:
    report = verify_file(
        publish_world.render_path,
        sessions=publish_world.sf,
        trust=trust_anchors(publish_world.runtime.settings),
    )
    assert report.verdict == "not_published"
    assert report.watermark_payload is None
    assert report.c2pa_state == "absent"
    assert report.publication is None


def test_republish_is_idempotent(publish_world: PublishWorld) -> None:
    world = publish_world
    first = mark_and_publish(world.runtime, job_id=world.job_id, actor=ACTOR)
    again = mark_and_publish(world.runtime, job_id=world.job_id, actor=ACTOR)
    assert again.already_published and again.publication_id == first.publication_id
    assert len(world.store.versions("published", first.object_key)) == 1
    with world.sf() as session:
        assert len(session.scalars(select(Publication)).all()) == 1


def test_publishing_under_revoked_consent_is_refused(publish_world: PublishWorld) -> None:
    world = publish_world
    with unit_of_work(world.sf) as session:
        compliance = consent.get_consent(session, world.consent_id).recorded_by
        consent.revoke(session, consent_id=world.consent_id, revoked_by=compliance, reason="subject withdrew")
    with pytest.raises(ConsentRevoked, match=f"consent {world.consent_id} .* is revoked at"):
        mark_and_publish(world.runtime, job_id=world.job_id, actor=ACTOR)
    assert job_state(world.sf, world.job_id) == JobState.refused
    assert world.store.versions("published", f"jobs/{world.job_id}/video.mp4") == []
    with world.sf() as session:
        assert session.scalars(select(Publication)).all() == []


def test_takedown_by_compliance_removes_object_and_records_who_why(
    publish_world: PublishWorld, tmp_path: Path
) -> None:
    world = publish_world
    result = mark_and_publish(world.runtime, job_id=world.job_id, actor=ACTOR)
    published = download(world, result.object_key, tmp_path / "published.mp4")
    with pytest.raises(RoleRequired, match="operator@example.org lacks role compliance or admin"):
        takedown_publication(
            world.sf,
            world.store,
            publication_id=result.publication_id,
            reason="complaint",
            actor_email=world.operator_email,
        )
    assert world.store.exists("published", result.object_key)  # refused before storage was touched

    report = takedown_publication(
        world.sf,
        world.store,
        publication_id=result.publication_id,
        reason="complaint #42",
        actor_email=world.compliance_email,
    )
    assert report.storage.publicly_gone and report.storage.deleted_versions
    assert report.taken_down_by == world.compliance_email
    with pytest.raises(ObjectMissingError):
        world.store.stat("published", result.object_key)
    with world.sf() as session:
        row = session.get(Publication, result.publication_id)
        assert row is not None and row.taken_down_at is not None
        assert (row.taken_down_by, row.takedown_reason) == (world.compliance_email, "complaint #42")
    assert job_state(world.sf, world.job_id) == JobState.taken_down
    assert "publication.taken_down" in audit_actions(world.sf)
    again = verify_file(published, sessions=world.sf, trust=trust_anchors(world.runtime.settings))
    assert again.verdict == "taken_down"
    with pytest.raises(InvalidTransition, match="already taken down"):
        takedown_publication(
            world.sf,
            world.store,
            publication_id=result.publication_id,
            reason="again",
            actor_email=world.compliance_email,
        )


def test_revocation_takes_down_every_publication_of_the_consent(publish_world: PublishWorld) -> None:
    world = publish_world
    first = mark_and_publish(world.runtime, job_id=world.job_id, actor=ACTOR)
    second_job = world.new_job()
    second = mark_and_publish(world.runtime, job_id=second_job, actor=ACTOR)
    assert first.watermark_payload != second.watermark_payload
    reports = takedown_for_consent(
        world.sf,
        world.store,
        consent_id=world.consent_id,
        reason="consent revoked",
        actor="system:consent-revocation",
    )
    assert {r.publication_id for r in reports} == {first.publication_id, second.publication_id}
    assert not world.store.exists("published", first.object_key)
    assert not world.store.exists("published", second.object_key)
    assert {job_state(world.sf, j) for j in (world.job_id, second_job)} == {JobState.taken_down}
    assert (
        takedown_for_consent(
            world.sf,
            world.store,
            consent_id=world.consent_id,
            reason="again",
            actor="system:consent-revocation",
        )
        == []
    )


def test_failed_record_removes_the_uploaded_object(
    publish_world: PublishWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = publish_world
    from governance import publications

    def database_gone(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("database went away")

    monkeypatch.setattr(publications, "record_publication", database_gone)
    with pytest.raises(ConnectionError, match="database went away"):
        mark_and_publish(world.runtime, job_id=world.job_id, actor=ACTOR)
    assert world.store.versions("published", f"jobs/{world.job_id}/video.mp4") == []
    assert job_state(world.sf, world.job_id) == JobState.publishing  # a retry can finish it
    with world.sf() as session:
        assert session.scalars(select(Publication)).all() == []


def test_signing_identity_from_settings(publish_world: PublishWorld, tmp_path: Path) -> None:
    from flows.publish.delivery import signing_identity
    from pipeline.marks.provenance import CA_FILE, CERT_FILE, KEY_FILE, SigningCertificateError, make_dev_ca

    settings = publish_world.runtime.settings
    dev = signing_identity(settings)  # nothing configured: the local development CA under var_dir
    assert (settings.var_dir / "signing" / CA_FILE).read_bytes() == dev.ca_pem
    make_dev_ca(tmp_path / "prod")
    prod = settings.model_copy(
        update={
            "signing_cert_path": tmp_path / "prod" / CERT_FILE,
            "signing_key_path": tmp_path / "prod" / KEY_FILE,
        }
    )
    assert signing_identity(prod).cert_chain_pem == (tmp_path / "prod" / CERT_FILE).read_bytes()
    half = settings.model_copy(update={"signing_cert_path": tmp_path / "prod" / CERT_FILE})
    with pytest.raises(SigningCertificateError, match="set both LIKENESS_SIGNING_CERT_PATH and"):
        signing_identity(half)
