"""Sessions, CSRF and the sign-in throttle, over HTTP, with the state checked after each refusal."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from console.web.sessions import COOKIE_NAME
from governance import users
from governance.schema import AuditEvent, Subject
from governance.uow import unit_of_work
from tests.web.conftest import PASSWORD, WebWorld, csrf_from, error_of


def subject_count(web: WebWorld) -> int:
    with unit_of_work(web.sf) as db:
        return len(list(db.scalars(select(Subject))))


def actions(web: WebWorld, prefix: str) -> list[str]:
    with unit_of_work(web.sf) as db:
        return [
            a for a in db.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)) if a.startswith(prefix)
        ]


# -- cookies and sessions ---------------------------------------------------------------------------


def test_session_cookie_flags_and_security_headers(web: WebWorld) -> None:
    client = web.client()
    response = client.get("/sign-in")
    cookie = response.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Max-Age=1800", "Path=/"):
        assert flag in cookie
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_sign_in_rotates_the_session_and_sign_out_kills_it_on_the_server(web: WebWorld) -> None:
    client = web.client()
    client.get("/sign-in")
    anonymous = client.cookies[COOKIE_NAME]
    assert web.sign_in(client, "reviewer@example.org", PASSWORD).status_code == 303
    signed_in = client.cookies[COOKIE_NAME]
    assert signed_in != anonymous  # no session fixation
    assert client.get("/review").status_code == 200
    assert actions(web, "auth.") == ["auth.signed_in"]

    token = csrf_from(client.get("/").text)
    out = client.post("/sign-out", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"] == "/sign-in"
    # Replaying the old cookie opens nothing: the session is gone on the server.
    replay = web.client()
    replay.cookies.set(COOKIE_NAME, signed_in, domain="testserver.local")
    response = replay.get("/review", cookies={COOKIE_NAME: signed_in})
    assert response.status_code == 303 and response.headers["location"].startswith("/sign-in")


def test_idle_session_expires(web: WebWorld) -> None:
    client = web.client("auditor")
    web.clock.advance(minutes=29)
    assert client.get("/audit").status_code == 200  # use keeps it alive...
    web.clock.advance(minutes=29)
    assert client.get("/audit").status_code == 200
    web.clock.advance(minutes=31)  # ...idleness past 30 minutes ends it
    response = client.get("/audit")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Faudit"


def test_session_has_an_absolute_lifetime(web: WebWorld) -> None:
    client = web.client("auditor")
    start = web.clock.now
    for _ in range(12 * 3 + 1):  # busy all day, never idle for long
        web.clock.advance(minutes=20)
        response = client.get("/audit")
        if response.status_code != 200:
            break
    assert response.status_code == 303
    assert response.headers["location"].startswith("/sign-in")
    assert web.clock.now - start > timedelta(hours=12)  # ended at the 12-hour limit, not before


def test_forged_cookie_is_ignored(web: WebWorld) -> None:
    client = web.client()
    response = client.get("/audit", cookies={COOKIE_NAME: "forged.value"})
    assert response.status_code == 303 and response.headers["location"].startswith("/sign-in")


def test_disabled_user_is_out_at_the_next_request(web: WebWorld) -> None:
    client = web.client("auditor")
    assert client.get("/audit").status_code == 200
    with unit_of_work(web.sf) as db:
        users.disable_user(db, user_id=web.users["auditor"], actor="admin@example.org")
    response = client.get("/audit")
    assert response.status_code == 303 and response.headers["location"].startswith("/sign-in")


def test_next_parameter_cannot_redirect_off_site(web: WebWorld) -> None:
    client = web.client()
    token = csrf_from(client.get("/sign-in?next=//evil.example/x").text)
    response = client.post(
        "/sign-in",
        data={
            "email": "auditor@example.org",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/x",
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/"


# -- CSRF -------------------------------------------------------------------------------------------


def test_form_without_csrf_token_is_refused_and_changes_nothing(web: WebWorld) -> None:
    client = web.client("compliance")
    before = subject_count(web)
    response = client.post("/subjects", data={"reference": "S-2", "display_name": "No Token"})
    assert response.status_code == 403
    assert "missing or wrong CSRF token" in error_of(response)
    assert subject_count(web) == before


def test_form_with_another_sessions_token_is_refused(web: WebWorld) -> None:
    mine, theirs = web.client("compliance"), web.client("compliance")
    their_token = csrf_from(theirs.get("/subjects").text)
    response = mine.post(
        "/subjects", data={"reference": "S-2", "display_name": "X", "csrf_token": their_token}
    )
    assert response.status_code == 403
    assert subject_count(web) == 1


def test_cross_origin_post_is_refused_even_with_a_token(web: WebWorld) -> None:
    client = web.client("compliance")
    token = csrf_from(client.get("/subjects").text)
    response = client.post(
        "/subjects",
        data={"reference": "S-2", "display_name": "X", "csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "another origin" in error_of(response)
    assert subject_count(web) == 1


def test_sign_in_itself_needs_the_csrf_token(web: WebWorld) -> None:
    client = web.client()
    client.get("/sign-in")
    response = client.post("/sign-in", data={"email": "auditor@example.org", "password": PASSWORD})
    assert response.status_code == 403
    assert actions(web, "auth.") == []


def test_same_form_with_token_goes_through(web: WebWorld) -> None:
    client = web.client("compliance")
    response = web.post(client, "/subjects", "/subjects", {"reference": "S-2", "display_name": "Bo Example"})
    assert response.status_code == 303
    assert subject_count(web) == 2
    page = client.get(response.headers["location"])
    assert "subject S-2 recorded" in page.text  # the flash, shown once
    assert "subject S-2 recorded" not in client.get(response.headers["location"]).text


# -- sign-in throttle -------------------------------------------------------------------------------


def test_failed_sign_ins_are_throttled_per_account(web: WebWorld) -> None:
    client = web.client()
    for _ in range(5):
        response = web.sign_in(client, "reviewer@example.org", "wrong password!!")
        assert response.status_code == 401
        assert "sign-in failed: unknown email or wrong password" in error_of(response)
    blocked = web.sign_in(client, "reviewer@example.org", PASSWORD)  # even the right password now
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "too many failed sign-ins" in error_of(blocked)
    assert client.get("/review").status_code == 303  # still not signed in
    assert actions(web, "auth.") == ["auth.sign_in_failed"] * 5
    web.clock.advance(minutes=16)
    assert web.sign_in(client, "reviewer@example.org", PASSWORD).status_code == 303


def test_throttle_also_counts_per_client_address(web: WebWorld) -> None:
    client = web.client()
    for n in range(
        web.app.state.console.config.sign_in_max_failures_per_address
    ):  # many accounts, one address
        assert web.sign_in(client, f"nobody{n}@example.org", "guess guess guess").status_code == 401
    assert web.sign_in(client, "auditor@example.org", PASSWORD).status_code == 429


def test_every_post_form_on_every_page_carries_the_csrf_token(web: WebWorld) -> None:
    import re

    job_id = web.job_awaiting_review()
    consent_id = web.grant()
    pages = {
        "compliance": [
            "/",
            "/subjects",
            f"/subjects/{web.subject_id}",
            f"/subjects/{web.subject_id}/consents/new",
            f"/consents/{consent_id}",
            f"/consents/{consent_id}/amend",
            f"/consents/{consent_id}/revoke",
        ],
        "reviewer": ["/review", f"/review/jobs/{job_id}"],
        "operator": ["/batches", "/batches/new"],
        "auditor": ["/audit", f"/audit/jobs/{job_id}", "/audit/chain"],
        "admin": ["/admin/users"],
    }
    forms_seen = 0
    for role, paths in pages.items():
        client = web.client(role)
        token = csrf_from(client.get("/").text)
        for path in paths:
            page = client.get(path)
            assert page.status_code == 200, path
            for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", page.text, flags=re.S):
                forms_seen += 1
                assert f'name="csrf_token" value="{token}"' in form, path
    assert forms_seen >= 14  # sign-out on every page, plus each page's own forms
