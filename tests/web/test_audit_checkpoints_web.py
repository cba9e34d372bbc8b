"""The web console signs an audit checkpoint after each consent change (real SQLite and SeaweedFS)."""

from __future__ import annotations

import pytest

from flows.audit.checkpoints import audit_verifier, stored_notes
from governance.audit import record as audit
from governance.audit.note import open_checkpoint
from governance.uow import unit_of_work
from tests.web.conftest import WebWorld, error_of


@pytest.mark.s3
def test_consent_grant_and_revoke_leave_checkpoints(web_s3: WebWorld) -> None:
    web = web_s3
    settings = web.runtime.settings
    client = web.client("compliance")
    response = web.post(
        client,
        f"/subjects/{web.subject_id}/consents/new",
        f"/subjects/{web.subject_id}/consents",
        {
            "purposes": "advertising",
            "channels": "web",
            "territories": "DE",
            "valid_from": "2026-01-01",
            "valid_until": "2030-01-01",
        },
        files={"evidence": ("release.pdf", b"%PDF-1.4\nrelease\n", "application/pdf")},
    )
    assert response.status_code == 303, error_of(response)
    consent_id = response.headers["location"].rstrip("/").split("/")[-1]

    def sizes() -> list[int]:
        verifier = audit_verifier(settings)
        return sorted(open_checkpoint(verifier, n.text).size for n in stored_notes(settings))

    def head() -> int:
        with unit_of_work(web.sf) as db:
            found = audit.chain_head(db)
        return found[0] if found else 0

    assert sizes()[-1] == head()
    page = f"/consents/{consent_id}/revoke"
    revoked = web.post(client, page, page, {"reason": "withdrawn"})
    assert revoked.status_code == 303, error_of(revoked)
    assert len(sizes()) == 2 and sizes()[-1] == head()
