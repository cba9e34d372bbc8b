"""The console's consent grant checks the reference photo like a portrait (one face, large enough), and a
refused grant leaves nothing in the bucket: on real SQLite and the real SeaweedFS S3 server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from governance.schema import Consent, LikenessReference
from governance.uow import unit_of_work
from tests.fixtures.media import BadMedia
from tests.web.conftest import WebWorld, error_of

pytestmark = pytest.mark.s3


def grant(web: WebWorld, photo: Path | None, **form: str) -> object:
    client = web.client("compliance")
    files = {"evidence": ("release.pdf", b"%PDF-1.4\nsigned release, subject S-1\n", "application/pdf")}
    if photo is not None:
        files["reference_photo"] = ("ref.png", photo.read_bytes(), "image/png")
    data = {
        "purposes": "advertising",
        "channels": "web",
        "territories": "DE",
        "valid_from": "2026-01-01",
        "valid_until": "2030-01-01",
        **form,
    }
    return web.post(
        client,
        f"/subjects/{web.subject_id}/consents/new",
        f"/subjects/{web.subject_id}/consents",
        data,
        files=files,
    )


def bucket_keys(web: WebWorld) -> list[str]:
    store = web.runtime.store
    return [o.object_name for o in store.client.list_objects(store.bucket_name("inputs"), recursive=True)]


def nothing_recorded(web: WebWorld) -> bool:
    with unit_of_work(web.sf) as db:
        return not list(db.scalars(select(Consent))) and not list(db.scalars(select(LikenessReference)))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_face_image", "no face found in reference photo 'ref.png' (320x240"),
        ("two_faces_image", "reference photo 'ref.png' shows 2 faces; exactly one is required"),
        ("small_face_image", "the face in reference photo 'ref.png' is"),
    ],
)
def test_a_reference_photo_that_is_no_usable_portrait_is_refused(
    web_s3: WebWorld,
    bad_media: BadMedia,
    name: str,
    message: str,
) -> None:
    response = grant(web_s3, getattr(bad_media, name))
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert message in error_of(response)
    assert "console/uploads" not in error_of(response)  # the server's own paths stay private
    assert nothing_recorded(web_s3) and bucket_keys(web_s3) == []


def test_a_refused_validity_leaves_no_evidence_or_photo_in_the_bucket(
    web_s3: WebWorld,
    sample_media: dict[str, Path],
) -> None:
    response = grant(web_s3, sample_media["portrait"], valid_from="2029-01-01", valid_until="2028-01-01")
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert "is not after valid_from" in error_of(response)
    assert nothing_recorded(web_s3) and bucket_keys(web_s3) == []
    # The same grant with a sane validity goes through and keeps both objects.
    assert grant(web_s3, sample_media["portrait"]).status_code == 303  # type: ignore[attr-defined]
    keys = bucket_keys(web_s3)
    assert (
        len(keys) == 2
        and any(k.startswith("evidence/") for k in keys)
        and any(k.startswith("references/") for k in keys)
    )
