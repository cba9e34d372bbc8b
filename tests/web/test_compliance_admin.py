"""Compliance and admin pages over HTTP: subject search and pages, reference thumbnails, ISO dates, and
user management (roles, disable, password reset), with the state checked after each change."""

from __future__ import annotations

import re

from sqlalchemy import select

from governance import subjects, users
from governance.schema import AuditEvent, User
from governance.uow import unit_of_work
from tests.web.conftest import PASSWORD, WebWorld, error_of


def test_subjects_search_and_pages(web: WebWorld) -> None:
    with unit_of_work(web.sf) as db:
        for n in range(55):
            subjects.add_subject(
                db, reference=f"P-{n:03d}", display_name=f"Person {n}", created_by=web.users["compliance"]
            )
    client = web.client("compliance")
    first = client.get("/subjects").text
    assert "56 subject(s)" in first and "page 1 of 2" in first
    assert first.count('href="/subjects/') == 50
    second = client.get("/subjects", params={"page": 2}).text
    assert "page 2 of 2" in second and second.count('href="/subjects/') == 6 and "S-1" in second
    found = client.get("/subjects", params={"q": "person 5"}).text
    refs = re.findall(r'href="/subjects/[^"]+">([^<]+)</a>', found)
    assert refs == ["P-005", "P-050", "P-051", "P-052", "P-053", "P-054"]
    assert "6 subject(s) matching" in found and 'value="person 5"' in found
    # LIKE wildcards in the query are taken literally.
    assert "0 subject(s)" in client.get("/subjects", params={"q": "%"}).text
    assert "No subject matches." in client.get("/subjects", params={"q": "<script>"}).text


def test_subject_page_shows_reference_thumbnails_and_iso_dates(web: WebWorld) -> None:
    with unit_of_work(web.sf) as db:
        ref = subjects.add_reference(
            db,
            subject_id=web.subject_id,
            bucket="inputs",
            object_key="refs/a.png",
            sha256="d" * 64,
            created_by=web.users["compliance"],
        ).id
    web.grant()
    client = web.client("compliance")
    page = client.get(f"/subjects/{web.subject_id}").text
    assert '<img class="thumb"' in page and f'src="/subjects/{web.subject_id}/references/{ref}"' in page
    assert "d" * 16 not in page  # no hashes in place of photos
    assert re.search(r"\d{4}-\d{2}-\d{2} → \d{4}-\d{2}-\d{2} \(UTC\)", page)
    form = client.get(f"/subjects/{web.subject_id}/consents/new").text
    assert 'name="valid_from" required value="' + web.clock.now.strftime("%Y-%m-%d") + '"' in form
    assert 'placeholder="YYYY-MM-DD"' in form and 'type="date"' not in form and "UTC" in form
    audit = web.client("auditor").get("/audit").text
    assert 'type="datetime-local"' not in audit and "Since (UTC)" in audit


def roles_of(web: WebWorld, name: str) -> list[str]:
    with unit_of_work(web.sf) as db:
        return list(users.get_user(db, web.users[name]).roles)


def test_admin_changes_roles_disables_and_resets_passwords(web: WebWorld) -> None:
    admin = web.client("admin")
    target = web.users["operator"]
    changed = web.post(
        admin, "/admin/users", f"/admin/users/{target}/roles", {"roles": ["operator", "auditor"]}
    )
    assert changed.status_code == 303
    assert roles_of(web, "operator") == ["auditor", "operator"]
    refused = web.post(
        admin, "/admin/users", f"/admin/users/{target}/roles", {"roles": ["admin", "reviewer"]}
    )
    assert refused.status_code == 422 and "may not be held together" in error_of(refused)
    assert roles_of(web, "operator") == ["auditor", "operator"]
    me = web.users["admin"]
    own = web.post(admin, "/admin/users", f"/admin/users/{me}/roles", {"roles": ["auditor"]})
    assert own.status_code == 422 and "own account" in error_of(own) and roles_of(web, "admin") == ["admin"]
    assert web.post(admin, "/admin/users", f"/admin/users/{me}/disable").status_code == 422

    reset = web.post(
        admin,
        "/admin/users",
        f"/admin/users/{web.users['reviewer']}/password",
        {"password": "a brand new passphrase"},
    )
    assert reset.status_code == 303
    assert web.sign_in(web.client(), "reviewer@example.org", PASSWORD).status_code == 401
    assert web.sign_in(web.client(), "reviewer@example.org", "a brand new passphrase").status_code == 303
    short = web.post(
        admin, "/admin/users", f"/admin/users/{web.users['reviewer']}/password", {"password": "short"}
    )
    assert short.status_code == 422 and "password too short" in error_of(short)

    auditor = web.client("auditor")
    assert auditor.get("/audit").status_code == 200
    disabled = web.post(admin, "/admin/users", f"/admin/users/{web.users['auditor']}/disable")
    assert disabled.status_code == 303
    assert auditor.get("/audit").status_code == 303  # their session ended with the account
    with unit_of_work(web.sf) as db:
        assert db.get(User, web.users["auditor"]).active is False
        logged = list(db.scalars(select(AuditEvent.action).where(AuditEvent.action.like("user.%"))))
    assert (
        logged.count("user.roles_changed") == 1
        and "user.password_set" in logged
        and "user.disabled" in logged
    )
