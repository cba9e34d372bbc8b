"""The models pages: compliance officers and auditors see each model's status, lineage and publications."""

from __future__ import annotations

from governance import consent, models_registry
from governance.models_registry import TrainingClip
from governance.uow import unit_of_work
from tests.web.conftest import WebWorld

SHA = "5" * 64


def test_models_and_lineage_for_compliance_and_auditors(web: WebWorld) -> None:
    training = web.grant(purposes=["model_training"])
    with unit_of_work(web.sf) as db:
        model = models_registry.register_model(
            db,
            name="mcnet-newsroom",
            version="3",
            sha256=SHA,
            config={"image_size": 256, "num_kp": 15},
            actor_email="operator@example.org",
            description="newsroom presenters",
            clips=[
                TrainingClip(
                    sha256="6" * 64,
                    subject_id=web.subject_id,
                    split="train",
                    frames=300,
                    bucket="inputs",
                    object_key="training/6.pt",
                    size_bytes=100,
                    origin="take1.mp4",
                )
            ],
        )
        model_id = model.id
    for role in ("compliance", "auditor"):
        client = web.client(role)
        listing = client.get("/models")
        assert listing.status_code == 200
        assert "mcnet-newsroom@3" in listing.text and f'href="/models/{model_id}"' in listing.text
        page = client.get(f"/models/{model_id}")
        assert page.status_code == 200
        assert (
            SHA in page.text and "take1.mp4" in page.text and "S-1" in page.text and "in force" in page.text
        )
        assert training[:8] in page.text and "image_size=256" in page.text
    assert web.client("operator").get("/models").status_code == 403
    assert web.client("reviewer").get(f"/models/{model_id}").status_code == 403

    with unit_of_work(web.sf) as db:
        consent.revoke(db, consent_id=training, revoked_by=web.users["compliance"], reason="subject withdrew")
    page = web.client("auditor").get(f"/models/{model_id}").text
    assert "consent_withdrawn" in page and "revoked" in page and "subject withdrew" not in page
    assert f"consent {training}" in page  # the status reason names the revoked consent
    assert web.client("compliance").get("/models/nope").status_code == 404
