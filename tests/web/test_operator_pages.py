"""The content team's pages over HTTP: the subject's media and consent scope in the batch form, no silent
defaults, a warning for uses no consent covers, entries kept after a refusal, own batches only, and the
reviewer's reason on the batch page."""

from __future__ import annotations

import html
import re

from sqlalchemy import func, select

from governance import batches, review, subjects
from governance.enums import AssetKind, Verdict
from governance.schema import Batch, Job
from governance.uow import unit_of_work
from tests.web.conftest import WebWorld, error_of


def batch_count(web: WebWorld) -> int:
    with unit_of_work(web.sf) as db:
        return int(db.scalar(select(func.count()).select_from(Batch)) or 0)


def other_subject_asset(web: WebWorld) -> tuple[str, str]:
    with unit_of_work(web.sf) as db:
        other = subjects.add_subject(
            db, reference="S-OTHER", display_name="Someone Else", created_by=web.users["compliance"]
        ).id
        asset = batches.register_asset(
            db,
            kind=AssetKind.portrait,
            bucket="inputs",
            object_key="other/p.png",
            sha256="e" * 64,
            size_bytes=10,
            actor="operator@example.org",
            media_type="image/png",
            subject_id=other,
        ).id
    return other, asset


def test_form_lists_only_the_chosen_subjects_media_and_shows_its_consent(web: WebWorld) -> None:
    mine = web.asset(AssetKind.portrait)
    _, theirs = other_subject_asset(web)
    web.grant()
    client = web.client("operator")
    blank = client.get("/batches/new").text
    assert mine not in blank and theirs not in blank  # nothing to pick before a subject is chosen
    page = client.get("/batches/new", params={"subject": web.subject_id}).text
    assert f'value="{mine}"' in page and theirs not in page
    scope = re.search(r'<section id="consent-scope">(.*?)</section>', page, re.S)
    assert scope and "advertising" in scope.group(1) and "web" in scope.group(1) and "DE" in scope.group(1)
    # No silent default: purpose and channel start empty and are required.
    assert '<select name="job0_purpose" required><option value="">— choose —</option>' in page
    assert '<select name="job0_channel" required><option value="">— choose —</option>' in page


def test_picking_another_subjects_media_is_refused(web: WebWorld) -> None:
    _, theirs = other_subject_asset(web)
    web.grant()
    client = web.client("operator")
    response = web.post(
        client,
        "/batches/new",
        "/batches",
        {
            "name": "x",
            "job0_subject": web.subject_id,
            "job0_purpose": "advertising",
            "job0_channel": "web",
            "job0_territory": "DE",
            "job0_portrait_asset": theirs,
            "job0_driving_asset": web.asset(AssetKind.driving_video),
        },
    )
    assert response.status_code == 422
    assert error_of(response) == "error: job 1: the stored portrait belongs to another subject"
    assert batch_count(web) == 0


def test_missing_channel_is_refused_and_the_entries_are_kept(web: WebWorld) -> None:
    client = web.client("operator")
    response = web.post(
        client,
        "/batches/new",
        "/batches",
        {
            "name": "spring <campaign>",
            "subject": web.subject_id,
            "job0_subject": web.subject_id,
            "job0_purpose": "advertising",
            "job0_channel": "",
            "job0_territory": "DE",
        },
    )
    assert response.status_code == 422
    assert error_of(response) == "error: job 1: choose a channel"
    page = response.text
    assert 'name="name" required maxlength="200" value="spring &lt;campaign&gt;"' in page
    assert "<option selected>advertising</option>" in page and 'value="DE"' in page
    assert "files cannot be: choose them again" in page
    assert batch_count(web) == 0


def test_a_use_no_consent_covers_is_a_warning_until_confirmed(web: WebWorld) -> None:
    web.grant()  # advertising / web / DE
    client = web.client("operator")
    form = {
        "name": "launch",
        "job0_subject": web.subject_id,
        "job0_purpose": "advertising",
        "job0_channel": "web",
        "job0_territory": "FR",
        "job0_portrait_asset": web.asset(AssetKind.portrait),
        "job0_driving_asset": web.asset(AssetKind.driving_video),
    }
    warned = web.post(client, "/batches/new", "/batches", form)
    assert warned.status_code == 200  # a warning, not an error: the form again
    text = html.unescape(warned.text)
    assert "job 1 (advertising/web/FR): no consent of subject" in text and "territory 'FR'" in text
    assert 'name="accept_uncovered"' in warned.text and batch_count(web) == 0
    confirmed = web.post(client, "/batches/new", "/batches", {**form, "accept_uncovered": "yes"})
    assert confirmed.status_code == 303 and batch_count(web) == 1


def test_operators_see_their_own_batches_and_auditors_all(web: WebWorld) -> None:
    mine = web.job_awaiting_review(requested_by="operator")
    theirs = web.job_awaiting_review(requested_by="opreview")
    with unit_of_work(web.sf) as db:
        my_batch, their_batch = db.get(Job, mine).batch_id, db.get(Job, theirs).batch_id
    operator = web.client("operator")
    listing = operator.get("/batches").text
    assert my_batch in listing and their_batch not in listing and "The batches you requested" in listing
    assert operator.get(f"/batches/{their_batch}").status_code == 404
    assert operator.get(f"/batches/{my_batch}").status_code == 200
    auditor = web.client("auditor")
    everything = auditor.get("/batches").text
    assert my_batch in everything and their_batch in everything and "Submit a batch" not in everything
    assert auditor.get(f"/batches/{their_batch}").status_code == 200


def test_batch_page_shows_the_reviewers_reason(web: WebWorld) -> None:
    job_id = web.job_awaiting_review()
    with unit_of_work(web.sf) as db:
        review.decide(
            db,
            job_id=job_id,
            reviewer_id=web.users["reviewer"],
            verdict=Verdict.reject,
            reason="lips drift <b>late</b>",
        )
        batch_id = db.get(Job, job_id).batch_id
    page = web.client("operator").get(f"/batches/{batch_id}").text
    assert "“lips drift &lt;b&gt;late&lt;/b&gt;”" in page
