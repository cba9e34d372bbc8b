"""The console behind a TLS proxy, the sign-in throttle per account and per address, `next` after sign-in,
oversized chunked uploads, headers on error pages, and role combinations that would defeat four eyes.
Each over HTTP, with the state checked after every refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.web import WebConfig
from governance import users
from governance.errors import ValidationFailed
from governance.schema import AuditEvent, Consent, Subject, User
from governance.uow import unit_of_work
from tests.web.conftest import PASSWORD, WebWorld, build_world, csrf_from, error_of

PROXY = ("127.0.0.1", 40000)  # the reverse proxy, as the app's socket peer
PUBLIC = "https://console.example"


def subjects(web: WebWorld) -> int:
    with unit_of_work(web.sf) as db:
        return len(list(db.scalars(select(Subject))))


@pytest.fixture
def proxied(sqlite_db_url: str, tmp_path: Path) -> Iterator[WebWorld]:
    """A console configured for a TLS proxy on 127.0.0.1 in front of it."""
    world = build_world(
        tmp_path,
        sqlite_db_url,
        config=lambda clock: WebConfig(
            clock=clock, public_origin=PUBLIC, trusted_proxies=("127.0.0.1", "::1"), secure_cookies=False
        ),
    )
    yield world
    world.close()


def behind_proxy(world: WebWorld, client_ip: str, *, peer: tuple[str, int] = PROXY) -> TestClient:
    """A client whose requests arrive the way the proxy forwards them: plain http to the upstream, with
    the browser's Origin and the forwarded headers."""
    client = TestClient(
        world.app,
        base_url="http://127.0.0.1:8765",
        follow_redirects=False,
        client=peer,
        headers={
            "origin": PUBLIC,
            "x-forwarded-proto": "https",
            "x-forwarded-host": "console.example",
            "x-forwarded-for": client_ip,
        },
    )
    world.clients.append(client)
    return client


def sign_in(world: WebWorld, client: TestClient, email: str, password: str = PASSWORD) -> Any:
    token = csrf_from(client.get("/sign-in").text)
    return client.post("/sign-in", data={"email": email, "password": password, "csrf_token": token})


# -- behind a TLS proxy -----------------------------------------------------------------------------


def test_forms_work_behind_a_tls_proxy_with_the_public_origin_set(proxied: WebWorld) -> None:
    client = behind_proxy(proxied, "203.0.113.7")
    assert sign_in(proxied, client, "compliance@example.org").status_code == 303
    token = csrf_from(client.get("/subjects").text)
    response = client.post("/subjects", data={"reference": "S-2", "display_name": "Bo", "csrf_token": token})
    assert response.status_code == 303, error_of(response)
    assert subjects(proxied) == 2
    with unit_of_work(proxied.sf) as db:  # the audit log names the browser's address, not the proxy's
        signed_in = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.signed_in")).one()
        assert signed_in.details["client"] == "203.0.113.7"


def test_another_origin_is_still_refused_behind_the_proxy(proxied: WebWorld) -> None:
    client = behind_proxy(proxied, "203.0.113.7")
    assert sign_in(proxied, client, "compliance@example.org").status_code == 303
    token = csrf_from(client.get("/subjects").text)
    response = client.post(
        "/subjects",
        data={"reference": "S-2", "display_name": "Bo", "csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert response.status_code == 403 and "another origin" in error_of(response)
    assert subjects(proxied) == 1


def test_forwarded_proto_from_a_trusted_proxy_is_enough_without_a_public_origin(
    sqlite_db_url: str, tmp_path: Path
) -> None:
    world = build_world(
        tmp_path,
        sqlite_db_url,
        config=lambda clock: WebConfig(clock=clock, trusted_proxies=("127.0.0.0/8",), secure_cookies=False),
    )
    try:
        client = behind_proxy(world, "203.0.113.7")
        assert sign_in(world, client, "compliance@example.org").status_code == 303
    finally:
        world.runtime.close()


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(sqlite_db_url: str, tmp_path: Path) -> None:
    """Without the proxy configured, the request from the issue stays refused (fail closed)."""
    world = build_world(
        tmp_path, sqlite_db_url, config=lambda clock: WebConfig(clock=clock, secure_cookies=False)
    )
    try:
        client = behind_proxy(world, "203.0.113.7")
        response = sign_in(world, client, "compliance@example.org")
        assert response.status_code == 403 and "another origin" in error_of(response)
        with unit_of_work(world.sf) as db:
            assert list(db.scalars(select(AuditEvent.action).where(AuditEvent.action.like("auth.%")))) == []
    finally:
        world.runtime.close()


def test_bad_proxy_settings_refuse_to_start() -> None:
    with pytest.raises(ValueError, match="trusted proxy 'proxy.local' is not an IP address"):
        WebConfig(trusted_proxies=("proxy.local",))
    with pytest.raises(ValueError, match="public origin 'console.example' is not an origin"):
        WebConfig(public_origin="console.example")


# -- sign-in throttle -------------------------------------------------------------------------------


def test_one_address_failing_does_not_lock_out_everyone_behind_the_proxy(proxied: WebWorld) -> None:
    attacker = behind_proxy(proxied, "203.0.113.66")
    for _ in range(5):
        assert sign_in(proxied, attacker, "reviewer@example.org", "wrong password!!").status_code == 401
    # The account under attack is throttled, from any address...
    elsewhere = behind_proxy(proxied, "198.51.100.1")
    blocked = sign_in(proxied, elsewhere, "reviewer@example.org")
    assert blocked.status_code == 429 and "too many failed sign-ins" in error_of(blocked)
    # ...but another person behind the same proxy signs in (the old lock-out was for everyone).
    colleague = behind_proxy(proxied, "198.51.100.2")
    assert sign_in(proxied, colleague, "auditor@example.org").status_code == 303
    with unit_of_work(proxied.sf) as db:
        failed = list(db.scalars(select(AuditEvent.actor).where(AuditEvent.action == "auth.sign_in_failed")))
    assert failed == ["anonymous:203.0.113.66"] * 5


def test_one_address_guessing_many_accounts_is_throttled_by_address(proxied: WebWorld) -> None:
    limit = proxied.app.state.console.config.sign_in_max_failures_per_address
    guesser = behind_proxy(proxied, "203.0.113.66")
    for n in range(limit):
        assert sign_in(proxied, guesser, f"nobody{n}@example.org", "guess guess guess").status_code == 401
    blocked = sign_in(proxied, guesser, "auditor@example.org")  # even a right password, from that address
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    other = behind_proxy(proxied, "203.0.113.67")
    assert sign_in(proxied, other, "auditor@example.org").status_code == 303


def test_a_forged_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_throttle(proxied: WebWorld) -> None:
    limit = proxied.app.state.console.config.sign_in_max_failures_per_address
    for n in range(limit):  # each request claims a new address, but comes straight from 192.0.2.5
        direct = behind_proxy(proxied, f"203.0.113.{n}", peer=("192.0.2.5", 5000))
        assert sign_in(proxied, direct, f"nobody{n}@example.org", "guess guess guess").status_code == 401
    direct = behind_proxy(proxied, "203.0.113.200", peer=("192.0.2.5", 5000))
    assert sign_in(proxied, direct, "auditor@example.org").status_code == 429


# -- where sign-in sends you ------------------------------------------------------------------------

OFF_SITE = [
    "/\t/evil.example/phish",
    "/%09/evil.example/phish",
    "/\\evil.example",
    "\\\\evil.example",
    "//evil.example/x",
    "https://evil.example/",
    "/\r\nset-cookie: x=1",
    "/\n/evil.example",
    "javascript:alert(1)",
    " //evil.example",
]


@pytest.mark.parametrize("target", OFF_SITE)
def test_next_accepts_only_same_origin_paths(web: WebWorld, target: str) -> None:
    client = web.client()
    form = client.get("/sign-in", params={"next": target}).text
    assert 'name="next" value="/"' in form
    token = csrf_from(form)
    response = client.post(
        "/sign-in",
        data={"email": "auditor@example.org", "password": PASSWORD, "csrf_token": token, "next": target},
    )
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_next_keeps_a_local_path_with_its_query(web: WebWorld) -> None:
    client = web.client()
    token = csrf_from(client.get("/sign-in").text)
    response = client.post(
        "/sign-in",
        data={
            "email": "auditor@example.org",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/audit?action=job.*",
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/audit?action=job.*"


# -- bodies, errors and headers ---------------------------------------------------------------------


def assert_security_headers(response: Any) -> None:
    assert "default-src 'none'" in response.headers.get("content-security-policy", ""), response.status_code
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers.get("x-frame-options") == "DENY"
    assert response.headers.get("x-content-type-options") == "nosniff"


def test_oversized_chunked_upload_gets_413_and_stores_nothing(sqlite_db_url: str, tmp_path: Path) -> None:
    world = build_world(
        tmp_path, sqlite_db_url, config=lambda clock: WebConfig(clock=clock, max_upload_bytes=64 * 1024)
    )
    try:
        client = world.client("compliance")
        token = csrf_from(client.get(f"/subjects/{world.subject_id}/consents/new").text)

        def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield (
                f'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
                '--b\r\nContent-Disposition: form-data; name="evidence"; filename="big.pdf"\r\n'
                "Content-Type: application/pdf\r\n\r\n%PDF-1.4\n"
            ).encode()
            for _ in range(40):
                yield b"x" * 8192

        response = client.post(
            f"/subjects/{world.subject_id}/consents",
            content=body(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert response.status_code == 413
        assert "request body over the 64 KiB limit" in response.text
        assert_security_headers(response)
        with unit_of_work(world.sf) as db:
            assert list(db.scalars(select(Consent))) == []
        assert list((tmp_path / "var" / "console" / "uploads").iterdir()) == []
    finally:
        world.runtime.close()


def test_error_responses_carry_the_security_headers(web: WebWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    client = web.client("auditor")
    assert_security_headers(client.get("/no/such/page"))  # 404
    assert_security_headers(client.get("/admin/users"))  # 403
    assert_security_headers(client.get("/audit", params={"since": "yesterday"}))  # 422
    declared = client.post("/subjects", content=b"x", headers={"content-length": str(300 * 1024 * 1024)})
    assert declared.status_code == 413
    assert_security_headers(declared)
    throttled = web.client()
    for _ in range(5):
        web.sign_in(throttled, "reviewer@example.org", "wrong password!!")
    refused = web.sign_in(throttled, "reviewer@example.org", PASSWORD)
    assert refused.status_code == 429
    assert_security_headers(refused)

    from console.web.routes import access

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom /secret/path")

    monkeypatch.setattr(access, "render", broken)
    crashing = TestClient(
        web.app, base_url="https://testserver", raise_server_exceptions=False, cookies=dict(client.cookies)
    )
    web.clients.append(crashing)
    crashed = crashing.get("/")
    assert crashed.status_code == 500
    assert_security_headers(crashed)
    assert "boom" not in crashed.text and "internal error" in error_of(crashed)


# -- four eyes and roles ----------------------------------------------------------------------------


def test_admin_and_reviewer_cannot_be_held_together(web: WebWorld) -> None:
    admin = web.client("admin")
    response = web.post(
        admin,
        "/admin/users",
        "/admin/users",
        {"email": "both@example.org", "password": "a long enough passphrase", "roles": ["admin", "reviewer"]},
    )
    assert response.status_code == 422
    assert error_of(response).startswith("error: roles admin and reviewer may not be held together")
    with unit_of_work(web.sf) as db:
        assert db.scalar(select(User).where(User.email == "both@example.org")) is None
        with pytest.raises(ValidationFailed, match="may not be held together"):
            users.set_roles(
                db, user_id=web.users["admin"], roles=["admin", "reviewer"], actor="admin@example.org"
            )
