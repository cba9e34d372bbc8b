"""The one table that says who may use which route, and the one check that enforces it.

Every route of the app is named, and every name must appear here: a route missing from the table is
refused to everyone (fail closed), and `tests/web/test_rbac.py` walks the app's routes against this table
so that a new route without an entry fails the build. Admins manage users; they do not get the other
roles' powers implicitly (that would undo separation of duties and four eyes).
"""

from __future__ import annotations

from enum import StrEnum

from governance.enums import Role


class Access(StrEnum):
    """Routes open to everyone (sign-in, the stylesheet) or to anyone signed in (home, sign-out)."""

    public = "public"
    signed_in = "signed_in"


Rule = Access | frozenset[Role]

C, OP, R, A, ADMIN = Role.compliance, Role.operator, Role.reviewer, Role.auditor, Role.admin

ROUTE_ROLES: dict[str, Rule] = {
    # access
    "sign_in_form": Access.public,
    "sign_in": Access.public,
    "stylesheet": Access.public,
    "home": Access.signed_in,
    "sign_out": Access.signed_in,
    # reviewer
    "review_queue": frozenset({R}),
    "review_job": frozenset({R}),
    "review_decide": frozenset({R}),
    "review_retry_publish": frozenset({R, OP}),
    "job_media": frozenset({R, A}),
    "reference_photo": frozenset({R, C, A}),
    "review_script": Access.public,
    "motion_plot_script": frozenset({R, A}),
    # compliance (auditors read, never write)
    "subjects": frozenset({C, A}),
    "subject_create": frozenset({C}),
    "subject_page": frozenset({C, A}),
    "consent_grant_form": frozenset({C}),
    "consent_grant": frozenset({C}),
    "consent_page": frozenset({C, A}),
    "consent_evidence": frozenset({C, A}),
    "consent_amend_form": frozenset({C}),
    "consent_amend": frozenset({C}),
    "consent_revoke_form": frozenset({C}),
    "consent_revoke": frozenset({C}),
    # models and their lineage (read only)
    "models": frozenset({C, A}),
    "model_page": frozenset({C, A}),
    # content team
    "batches": frozenset({OP, A}),  # operators see their own batches, auditors every one (read only)
    "batch_new": frozenset({OP}),
    "batch_submit": frozenset({OP}),
    "batch_page": frozenset({OP, A}),
    # auditor
    "audit_search": frozenset({A}),
    "audit_job_timeline": frozenset({A}),
    "audit_chain": frozenset({A}),
    "audit_export": frozenset({A}),
    # admin
    "users": frozenset({ADMIN}),
    "user_create": frozenset({ADMIN}),
    "user_roles": frozenset({ADMIN}),
    "user_disable": frozenset({ADMIN}),
    "user_password": frozenset({ADMIN}),
}


def allows(rule: Rule | None, *, signed_in: bool, roles: frozenset[str]) -> bool:
    """Whether a visitor with `roles` may use a route governed by `rule` (None: no entry, so never)."""
    if rule is None:
        return False
    if rule is Access.public:
        return True
    if not signed_in:
        return False
    if rule is Access.signed_in:
        return True
    return any(role.value in roles for role in rule)


def roles_for(name: str) -> Rule | None:
    """The rule for a route name, or None when the table has no entry."""
    return ROUTE_ROLES.get(name)
