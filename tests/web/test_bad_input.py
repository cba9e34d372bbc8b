"""Bad input over HTTP: each refusal is checked for its message, its status and the state left behind."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from console.web import WebConfig
from governance.enums import AssetKind, JobState
from governance.schema import Asset, Batch, Consent, Job, ReviewDecision, Subject
from governance.uow import unit_of_work
from tests.web.conftest import WebWorld, build_world, csrf_from, error_of

SCRIPT = '<script>alert("x")</script>'


def count(web: WebWorld, model: type) -> int:
    with unit_of_work(web.sf) as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_html_in_text_fields_is_shown_escaped(web: WebWorld) -> None:
    client = web.client("compliance")
    response = web.post(client, "/subjects", "/subjects", {"reference": "S-9", "display_name": SCRIPT})
    assert response.status_code == 303
    page = client.get(response.headers["location"]).text
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    listing = web.client("auditor").get("/subjects").text
    assert SCRIPT not in listing and "&lt;script&gt;" in listing


def test_script_in_a_review_reason_is_escaped_everywhere(web: WebWorld) -> None:
    job_id = web.job_awaiting_review()
    reviewer = web.client("reviewer")
    web.runtime.settings  # noqa: B018 - the runtime is built; approval does not publish in this world
    response = web.post(
        reviewer,
        f"/review/jobs/{job_id}",
        f"/review/jobs/{job_id}/decision",
        {"verdict": "reject", "reason": SCRIPT},
    )
    assert response.status_code == 303
    page = reviewer.get(f"/review/jobs/{job_id}").text
    assert SCRIPT not in page and "&lt;script&gt;" in page
    audit_page = web.client("auditor").get(f"/audit/jobs/{job_id}").text
    assert SCRIPT not in audit_page


def test_unknown_ids_are_404_pages_naming_the_id(web: WebWorld) -> None:
    missing = str(uuid.uuid4())
    pages = {
        "compliance": [
            f"/subjects/{missing}",
            f"/consents/{missing}",
            f"/consents/{missing}/revoke",
            f"/subjects/{missing}/consents/new",
        ],
        "auditor": [f"/audit/jobs/{missing}", f"/jobs/{missing}/media/output"],
        "reviewer": [f"/review/jobs/{missing}"],
        "operator": [f"/batches/{missing}"],
    }
    for role, paths in pages.items():
        client = web.client(role)
        for path in paths:
            response = client.get(path)
            assert response.status_code == 404, path
            assert missing in response.text, path
    assert web.client("auditor").get("/no/such/page").status_code == 404


def test_malformed_filters_are_refused_with_one_line(web: WebWorld) -> None:
    auditor = web.client("auditor")
    response = auditor.get("/audit?since=yesterday")
    assert response.status_code == 422
    assert "since 'yesterday' is not a date" in error_of(response)
    response = auditor.get("/audit?job_id=not-an-id")
    assert response.status_code == 422 and "job id 'not-an-id' is not an id" in error_of(response)
    response = auditor.get("/audit/export?format=xml")
    assert response.status_code == 422


def test_a_review_of_a_job_someone_already_decided(web_any_db: WebWorld) -> None:
    web = web_any_db
    job_id = web.job_awaiting_review()
    first, second = web.client("reviewer"), web.client("opreview")
    page_before = second.get(f"/review/jobs/{job_id}")  # the second reviewer has the form open...
    token = csrf_from(page_before.text)
    ok = web.post(
        first,
        f"/review/jobs/{job_id}",
        f"/review/jobs/{job_id}/decision",
        {"verdict": "reject", "reason": "lips drift off the face"},
    )
    assert ok.status_code == 303
    late = second.post(
        f"/review/jobs/{job_id}/decision",  # ...and submits after the first decided
        data={"verdict": "approve", "reason": "looks fine", "csrf_token": token},
    )
    assert late.status_code == 409
    assert f"job {job_id} was already decided: reject" in error_of(late)
    with unit_of_work(web.sf) as db:
        decisions = list(db.scalars(select(ReviewDecision).where(ReviewDecision.job_id == job_id)))
        assert [(d.verdict.value, d.reason) for d in decisions] == [("reject", "lips drift off the face")]
        from governance.jobs import get_job

        assert get_job(db, job_id).state == JobState.rejected


def test_four_eyes_refused_on_the_web_too(web_any_db: WebWorld) -> None:
    web = web_any_db
    job_id = web.job_awaiting_review(requested_by="opreview")
    client = web.client("opreview")
    page = client.get(f"/review/jobs/{job_id}").text
    assert "You requested this batch" in page
    response = web.post(
        client,
        f"/review/jobs/{job_id}",
        f"/review/jobs/{job_id}/decision",
        {"verdict": "approve", "reason": "mine, but fine"},
    )
    assert response.status_code == 409
    assert "four eyes" in error_of(response)
    assert count(web, ReviewDecision) == 0


def test_decision_needs_a_reason_and_a_known_verdict(web: WebWorld) -> None:
    job_id = web.job_awaiting_review()
    client = web.client("reviewer")
    blank = web.post(
        client,
        f"/review/jobs/{job_id}",
        f"/review/jobs/{job_id}/decision",
        {"verdict": "approve", "reason": "   "},
    )
    assert blank.status_code == 422 and "reason is required" in error_of(blank)
    odd = web.post(
        client,
        f"/review/jobs/{job_id}",
        f"/review/jobs/{job_id}/decision",
        {"verdict": "maybe", "reason": "hmm"},
    )
    assert odd.status_code == 422 and "verdict" in error_of(odd)
    assert count(web, ReviewDecision) == 0


def test_oversized_upload_is_refused_before_it_is_read(sqlite_db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    web = build_world(
        tmp_path, sqlite_db_url, config=lambda clock: WebConfig(clock=clock, max_upload_bytes=64 * 1024)
    )
    client = web.client("compliance")
    token = csrf_from(client.get(f"/subjects/{web.subject_id}/consents/new").text)
    big = b"%PDF-1.4\n" + b"0" * (200 * 1024)
    response = client.post(
        f"/subjects/{web.subject_id}/consents",
        data={
            "csrf_token": token,
            "purposes": "advertising",
            "channels": "web",
            "territories": "DE",
            "valid_from": "2026-01-01",
        },
        files={"evidence": ("release.pdf", big, "application/pdf")},
    )
    assert response.status_code == 413
    assert "error: upload refused: request body over the 64 KiB limit" in response.text
    assert count(web, Consent) == 0
    assert list((tmp_path / "var" / "console" / "uploads").iterdir()) == []
    web.runtime.close()


def test_wrong_file_type_is_refused_and_nothing_is_recorded(web: WebWorld) -> None:
    client = web.client("compliance")
    token = csrf_from(client.get(f"/subjects/{web.subject_id}/consents/new").text)
    response = client.post(
        f"/subjects/{web.subject_id}/consents",
        data={
            "csrf_token": token,
            "purposes": "advertising",
            "channels": "web",
            "territories": "DE",
            "valid_from": "2026-01-01",
        },
        files={"evidence": ("release.pdf", b"MZ\x90\x00 not a pdf", "application/pdf")},
    )
    assert response.status_code == 415
    assert "evidence: 'release.pdf' is not an accepted evidence document (PDF, JPEG or PNG)" in error_of(
        response
    )
    assert count(web, Consent) == 0
    assert list((web.tmp / "var" / "console" / "uploads").iterdir()) == []


def test_bad_dates_and_vocabulary_are_refused(web: WebWorld) -> None:
    client = web.client("compliance")
    base = {"purposes": "advertising", "channels": "web", "territories": "DE", "valid_from": "2026-01-01"}
    pdf = {"evidence": ("release.pdf", b"%PDF-1.4 x", "application/pdf")}
    page = f"/subjects/{web.subject_id}/consents/new"
    action = f"/subjects/{web.subject_id}/consents"
    bad_date = web.post(client, page, action, {**base, "valid_from": "31/12/2026"}, files=pdf)
    assert bad_date.status_code == 422 and "valid from '31/12/2026' is not a date" in error_of(bad_date)
    bad_term = web.post(client, page, action, {**base, "territories": "Atlantis"}, files=pdf)
    assert bad_term.status_code == 422 and "unknown territory 'ATLANTIS'" in error_of(bad_term)
    # An end already passed is named as such, even when it is also before the start.
    past = web.post(client, page, action, {**base, "valid_until": "2025-12-31"}, files=pdf)
    assert past.status_code == 422 and error_of(past).startswith("error: valid_until 2025-12-31")
    assert "is in the past: a consent's validity must end in the future" in error_of(past)
    assert count(web, Consent) == 0


def test_storage_down_is_a_503_and_nothing_is_recorded(web: WebWorld) -> None:
    """This world's object store points at a closed port: the grant fails whole, saying why."""
    client = web.client("compliance")
    response = web.post(
        client,
        f"/subjects/{web.subject_id}/consents/new",
        f"/subjects/{web.subject_id}/consents",
        {"purposes": "advertising", "channels": "web", "territories": "DE", "valid_from": "2026-01-01"},
        files={"evidence": ("release.pdf", b"%PDF-1.4 x", "application/pdf")},
    )
    assert response.status_code == 503
    assert "object storage at" in error_of(response) and "unreachable" in error_of(response)
    assert count(web, Consent) == 0
    assert list((web.tmp / "var" / "console" / "uploads").iterdir()) == []


def test_subject_with_a_bad_reference_is_refused(web: WebWorld) -> None:
    client = web.client("compliance")
    response = web.post(client, "/subjects", "/subjects", {"reference": "has spaces!", "display_name": "X"})
    assert response.status_code == 422
    assert "subject reference 'has spaces!' must be" in error_of(response)
    assert count(web, Subject) == 1


def test_batch_form_without_jobs_or_with_both_sources(web: WebWorld) -> None:
    client = web.client("operator")
    empty = web.post(client, "/batches/new", "/batches", {"name": "nothing"})
    assert empty.status_code == 422 and "the batch has no jobs" in error_of(empty)
    both = web.post(
        client,
        "/batches/new",
        "/batches",
        {
            "name": "x",
            "job0_subject": web.subject_id,
            "job0_purpose": "advertising",
            "job0_channel": "web",
            "job0_territory": "DE",
            "job0_portrait_asset": str(uuid.uuid4()),
            "job0_driving_asset": str(uuid.uuid4()),
        },
        files={"job0_portrait_file": ("p.png", b"\x89PNG\r\n\x1a\n....", "image/png")},
    )
    assert (
        both.status_code == 422
        and "job 1: give either an uploaded portrait or an existing one, not both" in error_of(both)
    )
    unknown = web.post(
        client,
        "/batches/new",
        "/batches",
        {
            "name": "x",
            "job0_subject": web.subject_id,
            "job0_purpose": "advertising",
            "job0_channel": "web",
            "job0_territory": "DE",
            "job0_portrait_asset": str(uuid.uuid4()),
            "job0_driving_asset": str(uuid.uuid4()),
        },
    )
    assert unknown.status_code == 404 and "job 1: asset" in error_of(unknown)


def _two_jobs(web: WebWorld, media: dict[str, Path], **second: str) -> tuple[dict[str, str], dict[str, Any]]:
    """A batch form whose first job uploads good media and whose second job is what the test makes it."""
    data = {"name": "two jobs", "accept_uncovered": "yes"}
    for i in (0, 1):
        data.update(
            {
                f"job{i}_subject": web.subject_id,
                f"job{i}_purpose": "advertising",
                f"job{i}_channel": "web",
                f"job{i}_territory": "DE",
            }
        )
    data.update(second)
    files = {
        "job0_portrait_file": ("me.png", media["portrait"].read_bytes(), "image/png"),
        "job0_driving_file": ("drive.mp4", media["driving"].read_bytes(), "video/mp4"),
    }
    if "job1_portrait_asset" not in second:
        files["job1_portrait_file"] = ("me2.png", media["portrait"].read_bytes(), "image/png")
    if "job1_driving_asset" not in second:
        files["job1_driving_file"] = ("drive2.mp4", media["driving"].read_bytes(), "video/mp4")
    return data, files


def _inputs_keys(web: WebWorld) -> list[str]:
    store = web.runtime.store
    return [o.object_name for o in store.client.list_objects(store.bucket_name("inputs"), recursive=True)]


@pytest.mark.s3
@pytest.mark.parametrize(
    ("second", "status", "message"),
    [
        # Refused by the checks before any file is read: unknown territory.
        ({"job1_territory": "XX"}, 422, "job 2: unknown territory 'XX'"),
        # Refused while checking files: job 1's good media must not have been stored meanwhile.
        ({"bad_driving": "yes"}, 422, "job 2 driving video: video 'drive2.mp4' cannot be read"),
        # Refused by governance after the uploads (a portrait picked as the driving video): they are removed.
        ({"job1_driving_asset": "portrait"}, 422, "job 2: asset"),
    ],
)
def test_a_refused_web_batch_leaves_no_object_and_no_row(
    web_s3: WebWorld,
    sample_media: dict[str, Path],
    second: dict[str, str],
    status: int,
    message: str,
) -> None:
    web = web_s3
    extra = dict(second)
    bad_driving = extra.pop("bad_driving", None)
    if extra.get("job1_driving_asset") == "portrait":
        extra["job1_driving_asset"] = web.asset(AssetKind.portrait)
    data, files = _two_jobs(web, sample_media, **extra)
    if bad_driving:
        files["job1_driving_file"] = ("drive2.mp4", b"\x00\x00\x00\x18ftypmp42 but nothing else", "video/mp4")
    assets_before = count(web, Asset)
    client = web.client("operator")
    response = web.post(client, "/batches/new", "/batches", data, files=files)
    assert response.status_code == status
    error = error_of(response)
    assert message in error and "\n" not in error and "console/uploads" not in error
    assert _inputs_keys(web) == []
    assert count(web, Batch) == count(web, Job) == 0 and count(web, Asset) == assets_before
    assert list((web.tmp / "var" / "console" / "uploads").iterdir()) == []
