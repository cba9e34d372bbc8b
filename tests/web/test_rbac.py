"""The RBAC table against the app: every route, for every role and for anonymous visitors.

The expectations are generated from `ROUTE_ROLES`, and the routes from the app itself, so a new route
without an entry fails here (and is refused to everyone at run time).
"""

from __future__ import annotations

import re
import uuid

from console.web.app import api_routes
from console.web.rbac import ROUTE_ROLES, Access, allows
from governance.enums import Role
from tests.web.conftest import PEOPLE, WebWorld, csrf_from

PARAMS = re.compile(r"\{(\w+)\}")


def concrete(path: str) -> str:
    """A path with its parameters filled in: unknown ids (so allowed roles get 404, never 403)."""
    return PARAMS.sub(lambda m: "output" if m.group(1) == "which" else str(uuid.uuid4()), path)


def test_every_route_has_an_entry_and_every_entry_a_route(web: WebWorld) -> None:
    names = {route.name for route in api_routes(web.app)}
    assert names - set(ROUTE_ROLES) == set(), "routes without an RBAC entry"
    assert set(ROUTE_ROLES) - names == set(), "RBAC entries naming no route"
    # Names are the table's keys: two routes sharing one would share a rule by accident.
    assert len(names) == len(api_routes(web.app))


def test_a_route_missing_from_the_table_is_refused_to_everyone(web: WebWorld) -> None:
    @web.app.get("/unlisted", name="unlisted")
    def unlisted() -> str:
        return "should never be served"

    admin = web.client("admin")
    response = admin.get("/unlisted")
    assert response.status_code == 403
    assert "route unlisted has no entry in the access table" in response.text
    assert "should never be served" not in response.text


def test_admin_gets_no_other_roles_powers() -> None:
    admin_routes = {
        name for name, rule in ROUTE_ROLES.items() if isinstance(rule, frozenset) and Role.admin in rule
    }
    assert admin_routes == {"users", "user_create", "user_roles", "user_disable", "user_password"}


def test_every_route_for_every_role(web: WebWorld) -> None:
    """Each role gets through exactly the routes the table gives it; everyone else gets 403 (or sign-in)."""
    routes = api_routes(web.app)
    problems: list[str] = []
    visitors: dict[str, frozenset[str]] = {name: frozenset(roles) for name, roles in PEOPLE.items()}
    for visitor, roles in [("anonymous", frozenset()), *visitors.items()]:
        client = web.client(None if visitor == "anonymous" else visitor)
        token = (
            csrf_from(client.get("/sign-in").text)
            if visitor == "anonymous"
            else csrf_from(client.get("/").text)
        )
        for route in routes:
            for method in sorted(route.methods or []):
                if route.name == "sign_out" and visitor != "anonymous":
                    continue  # would end the session mid-loop; covered in test_security
                path = concrete(route.path)
                response = client.request(
                    method, path, data={"csrf_token": token} if method == "POST" else None
                )
                rule = ROUTE_ROLES[route.name]
                allowed = allows(rule, signed_in=visitor != "anonymous", roles=roles)
                status = response.status_code
                to_sign_in = status == 303 and response.headers["location"].startswith("/sign-in")
                if status >= 500:
                    problems.append(f"{visitor} crashed {method} {route.path} ({status})")
                if allowed and (status in (401, 403) or to_sign_in):
                    problems.append(f"{visitor} refused {method} {route.path} ({status})")
                if not allowed:
                    expected_refusal = to_sign_in if visitor == "anonymous" else status == 403
                    if not expected_refusal:
                        problems.append(f"{visitor} NOT refused {method} {route.path} ({status})")
    assert problems == []


def test_refusal_names_the_missing_role(web: WebWorld) -> None:
    operator = web.client("operator")
    response = operator.get("/audit")
    assert response.status_code == 403
    assert "operator@example.org lacks the role auditor for this page" in response.text


def test_anonymous_is_sent_to_sign_in_and_back(web: WebWorld) -> None:
    client = web.client()
    response = client.get("/audit/chain")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Faudit%2Fchain"
    token = csrf_from(client.get(response.headers["location"]).text)
    signed = client.post(
        "/sign-in",
        data={
            "email": "auditor@example.org",
            "password": "correct horse battery staple",
            "csrf_token": token,
            "next": "/audit/chain",
        },
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/audit/chain"
    assert client.get("/audit/chain").status_code == 200


def test_public_rules_are_few() -> None:
    assert {name for name, rule in ROUTE_ROLES.items() if rule is Access.public} == {
        "sign_in_form",
        "sign_in",
        "stylesheet",
        "review_script",
    }


def test_docs_list_every_route(web: WebWorld) -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text(encoding="utf-8")
    missing = [route.name for route in api_routes(web.app) if f"`{route.name}`" not in doc]
    assert missing == []


def test_a_refused_signed_in_user_is_on_record(web: WebWorld) -> None:
    from sqlalchemy import select

    from governance.schema import AuditEvent
    from governance.uow import unit_of_work

    operator = web.client("operator")
    assert operator.get("/audit/chain").status_code == 403
    with unit_of_work(web.sf) as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "access.denied")).one()
        assert event.actor == "operator@example.org"
        assert event.details["attempted"] == "console:audit_chain"
        assert event.details["required_roles"] == ["auditor"] and event.details["held_roles"] == ["operator"]
