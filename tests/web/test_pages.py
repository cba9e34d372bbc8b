"""Each role's pages end to end over HTTP, on real SQLite and the real SeaweedFS S3 server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from governance import consent, jobs
from governance.enums import JobState
from governance.schema import Asset, AuditEvent, Batch, Consent, Job, LikenessReference, ReviewDecision
from governance.uow import unit_of_work
from tests.web.conftest import WebWorld, csrf_from, error_of, store_job_media


def actions(web: WebWorld) -> list[str]:
    with unit_of_work(web.sf) as db:
        return list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


@pytest.mark.s3
def test_compliance_grants_amends_and_reads_history(web_s3: WebWorld, sample_media: dict[str, Path]) -> None:
    web = web_s3
    client = web.client("compliance")
    evidence = b"%PDF-1.4\nsigned release, subject S-1\n"
    photo = sample_media["portrait"].read_bytes()
    response = web.post(
        client,
        f"/subjects/{web.subject_id}/consents/new",
        f"/subjects/{web.subject_id}/consents",
        {
            "purposes": ["advertising", "editorial"],
            "channels": "web",
            "territories": "de, fr",
            "valid_from": "2026-01-01",
            "valid_until": "2030-01-01",
            "notes": "signed in person",
        },
        files={
            "evidence": ("release.pdf", evidence, "application/pdf"),
            "reference_photo": ("ref.png", photo, "image/png"),
        },
    )
    assert response.status_code == 303, error_of(response)
    with unit_of_work(web.sf) as db:
        granted = db.scalars(select(Consent)).one()
        reference = db.scalars(select(LikenessReference)).one()
        assert granted.purposes == ["advertising", "editorial"] and granted.territories == ["DE", "FR"]
        assert granted.evidence_sha256 == hashlib.sha256(evidence).hexdigest()
        assert granted.evidence_key.startswith("s3://") and granted.evidence_key.endswith(".pdf")
        assert reference.sha256 == hashlib.sha256(photo).hexdigest()
    # The evidence comes back byte for byte, through the app.
    document = client.get(f"/consents/{granted.id}/evidence")
    assert document.status_code == 200 and document.content == evidence
    assert document.headers["content-disposition"].startswith("attachment")

    page = f"/consents/{granted.id}/amend"
    amended = web.post(
        client,
        page,
        page,
        {
            "purposes": "advertising",
            "channels": ["web", "social_media"],
            "territories": "DE",
            "valid_until": "2029-06-30",
            "reason": "subject narrowed the scope",
        },
    )
    assert amended.status_code == 303, error_of(amended)
    history = client.get(amended.headers["location"]).text
    assert "consent amended: version 2" in history
    assert history.count("<td>v") == 2 and "superseded" in history and "social_media" in history
    assert [a for a in actions(web) if a.startswith("consent.")] == ["consent.granted", "consent.amended"]
    # Auditors read the same history, without the buttons that change it.
    auditor_view = web.client("auditor").get(f"/consents/{granted.id}").text
    assert "Amend" not in auditor_view and "Revoke" not in auditor_view and "v2" in auditor_view


@pytest.mark.s3
def test_revoke_confirmation_lists_publications_then_takes_them_down(
    web_s3: WebWorld, sample_media: dict[str, Path]
) -> None:
    web = web_s3
    job_id = web.job_awaiting_review()
    store = web.runtime.store
    stored, _ = web.publish_file(job_id, sample_media["render"], payload=4242)
    with web.sf() as db:
        consent_id = jobs.get_job(db, job_id).consent_id
    client = web.client("compliance")
    confirm = client.get(f"/consents/{consent_id}/revoke")
    assert confirm.status_code == 200
    assert stored.key in confirm.text and "Revoke and take down 1 publication(s)" in confirm.text
    done = client.post(
        f"/consents/{consent_id}/revoke",
        data={"reason": "subject withdrew", "csrf_token": csrf_from(confirm.text)},
    )
    assert done.status_code == 303
    assert "revoked; 1 publication(s) taken down" in client.get(done.headers["location"]).text
    with unit_of_work(web.sf) as db:
        assert consent.get_consent(db, consent_id).revoked_at is not None
        assert jobs.get_job(db, job_id).state == JobState.taken_down
    assert not store.exists("published", stored.key)
    assert {"consent.revoked", "publication.taken_down"} <= set(actions(web))


@pytest.mark.s3
def test_reviewer_watches_and_approves(web_s3: WebWorld, sample_media: dict[str, Path]) -> None:
    web = web_s3
    parts = store_job_media(web, sample_media)
    job_id = web.job_awaiting_review(
        portrait=parts["portrait"], driving=parts["driving"], output=parts["output"]
    )
    client = web.client("reviewer")
    queue = client.get("/review").text
    assert job_id[:8] in queue and "colour_drift" in queue
    page = client.get(f"/review/jobs/{job_id}").text
    assert (
        f'src="/jobs/{job_id}/media/output"' in page
        and "<svg" in page
        and "worst 5% review &gt; 0.070" in page
    )
    assert "No face found in sampled frame(s) 6." in page  # the None at index 2, every 3rd frame
    assert "In force now" in page and "advertising" in page
    for which, name in (("output", "render"), ("portrait", "portrait"), ("driving", "driving")):
        media = client.get(f"/jobs/{job_id}/media/{which}")
        assert media.status_code == 200, which
        assert media.content == sample_media[name].read_bytes()
        assert media.headers["cache-control"] == "no-store"  # nothing private stays in a browser cache
    ranged = client.get(f"/jobs/{job_id}/media/output", headers={"range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100  # the player can seek

    response = web.post(
        client,
        f"/review/jobs/{job_id}",
        f"/review/jobs/{job_id}/decision",
        {"verdict": "approve", "reason": "lip sync fine; drift acceptable"},
    )
    assert response.status_code == 303
    after = client.get(response.headers["location"]).text
    assert "approved" in after and "lip sync fine; drift acceptable" in after
    with unit_of_work(web.sf) as db:
        decision = db.scalars(select(ReviewDecision)).one()
        assert decision.reviewer_id == web.users["reviewer"] and decision.verdict.value == "approve"
        assert jobs.get_job(db, job_id).state == JobState.approved  # publish_on_approval is off here
    assert "review.approved" in actions(web)


def _batch_form(web: WebWorld, **slot: Any) -> dict[str, Any]:
    return {
        "name": "spring campaign",
        "job0_subject": web.subject_id,
        "job0_purpose": "advertising",
        "job0_channel": "web",
        "job0_territory": "de",
        **slot,
    }


@pytest.mark.s3
def test_operator_submits_a_batch_by_upload_and_by_pick(
    web_s3: WebWorld, sample_media: dict[str, Path]
) -> None:
    web = web_s3
    web.grant()  # the use is covered: no warning stands in the way
    client = web.client("operator")
    files = {
        "job0_portrait_file": ("me.png", sample_media["portrait"].read_bytes(), "image/png"),
        "job0_driving_file": ("drive.mp4", sample_media["driving"].read_bytes(), "video/mp4"),
    }
    response = web.post(client, "/batches/new", "/batches", _batch_form(web), files=files)
    assert response.status_code == 303, error_of(response)
    status = client.get(response.headers["location"]).text
    assert "spring campaign" in status and "submitted" in status and "S-1" in status
    with unit_of_work(web.sf) as db:
        job = db.scalars(select(Job)).one()
        portrait = db.get(Asset, job.portrait_asset_id)
        assert (
            portrait is not None
            and portrait.sha256 == hashlib.sha256(sample_media["portrait"].read_bytes()).hexdigest()
        )
        assert job.territory == "DE"
    assert web.runtime.store.exists("inputs", portrait.object_key)
    # The same media again, picked this time: no new asset rows.
    again = web.post(
        client,
        "/batches/new",
        "/batches",
        _batch_form(web, job0_portrait_asset=job.portrait_asset_id, job0_driving_asset=job.driving_asset_id),
    )
    assert again.status_code == 303
    with unit_of_work(web.sf) as db:
        assert len(list(db.scalars(select(Batch)))) == 2 and len(list(db.scalars(select(Asset)))) == 2
    listing = client.get("/batches").text
    assert listing.count(">spring campaign</a>") == 2


@pytest.mark.s3
def test_operator_upload_of_a_fake_video_is_refused(web_s3: WebWorld, sample_media: dict[str, Path]) -> None:
    web = web_s3
    web.grant()  # the use is covered: no warning stands in the way
    client = web.client("operator")
    files = {
        "job0_portrait_file": ("me.png", sample_media["portrait"].read_bytes(), "image/png"),
        "job0_driving_file": ("drive.mp4", b"\x00\x00\x00\x18ftypmp42 but nothing else", "video/mp4"),
    }
    response = web.post(client, "/batches/new", "/batches", _batch_form(web), files=files)
    assert response.status_code == 422
    message = error_of(response)
    assert message.startswith("error: job 1 driving video: video 'drive.mp4' cannot be read")
    assert "console/uploads" not in message  # the server's own paths stay private
    with unit_of_work(web.sf) as db:
        assert list(db.scalars(select(Batch))) == []


@pytest.mark.s3
def test_auditor_searches_follows_a_job_verifies_and_exports(web_s3: WebWorld) -> None:
    web = web_s3
    job_id = web.job_awaiting_review()
    client = web.client("auditor")
    found = client.get(f"/audit?action=job.*&job_id={job_id}").text
    assert "job.submitted" in found and "job.awaiting_review" in found and "consent.granted" not in found
    timeline = client.get(f"/audit/jobs/{job_id}").text
    for action in (
        "batch.created",
        "consent.granted",
        "job.submitted",
        "job.rendering",
        "job.awaiting_review",
    ):
        assert action in timeline, action
    assert timeline.index("consent.granted") < timeline.index("job.rendering")
    chain = client.get("/audit/chain").text
    assert 'id="chain-status">Intact' in chain
    export = client.get(f"/audit/export?format=jsonl&job_id={job_id}")
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert lines[-1]["record"] == "chain_head" and lines[-1]["count"] == len(lines) - 1
    assert all(line["job_id"] == job_id for line in lines[:-1])
    assert actions(web)[-1] == "audit.exported"
    csv_export = client.get("/audit/export?format=csv")
    assert csv_export.status_code == 200 and csv_export.text.splitlines()[0].startswith("record,")


@pytest.mark.s3
def test_media_gone_from_storage_is_not_served_from_the_cache(
    web_s3: WebWorld, sample_media: dict[str, Path]
) -> None:
    web = web_s3
    parts = store_job_media(web, sample_media)
    job_id = web.job_awaiting_review(
        portrait=parts["portrait"], driving=parts["driving"], output=parts["output"]
    )
    client = web.client("reviewer")
    assert client.get(f"/jobs/{job_id}/media/output").status_code == 200  # now cached locally
    bucket, key, _ = parts["output"]
    web.runtime.store.delete(bucket, key)  # e.g. the retention sweep
    response = client.get(f"/jobs/{job_id}/media/output")
    assert response.status_code == 404
    assert f"object {bucket}/{key} is no longer in storage" in error_of(response)


def test_evidence_kept_by_the_cli_is_readable_and_checked(web: WebWorld) -> None:
    """`likeness consent grant` keeps evidence under <var_dir>/evidence/; the console serves it if intact."""
    document = b"%PDF-1.4 release kept by the CLI\n"
    digest = hashlib.sha256(document).hexdigest()
    kept = web.tmp / "var" / "evidence" / f"{digest}.pdf"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(document)
    consent_id = web.grant(evidence_path=kept, evidence_sha256=digest, evidence_key=f"evidence/{digest}.pdf")
    traversal = web.grant(evidence_key="evidence/../../consent.pdf")
    client = web.client("auditor")
    response = client.get(f"/consents/{consent_id}/evidence")
    assert response.status_code == 200 and response.content == document
    kept.write_bytes(b"%PDF-1.4 swapped afterwards\n")
    changed = client.get(f"/consents/{consent_id}/evidence")
    assert changed.status_code == 404 and "no longer matches its recorded sha256" in error_of(changed)
    outside = client.get(f"/consents/{traversal}/evidence")
    assert outside.status_code == 404 and "is not available to the console" in error_of(outside)
