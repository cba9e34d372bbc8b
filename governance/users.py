"""Users, their roles and their passwords (argon2id), and the one role check every service uses."""

from __future__ import annotations

import re
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.enums import Role
from governance.errors import AuthenticationFailed, NotFound, Refusal, RoleRequired, ValidationFailed
from governance.schema import User
from governance.types import utcnow

EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)


def normalise_email(email: str) -> str:
    """Trimmed, lower-cased email; refuses anything that is not shaped like one."""
    cleaned = email.strip().lower()
    if not EMAIL_PATTERN.match(cleaned) or len(cleaned) > 320:
        raise ValidationFailed(f"{email!r} is not an email address")
    return cleaned


# Roles one account may not hold together. An admin creates accounts and sets roles; an admin who could
# also review could make a second account to request a batch and then approve it, so four eyes would
# rest on one person.
INCOMPATIBLE_ROLES = {
    frozenset({Role.admin.value, Role.reviewer.value}): "it would defeat four eyes (an admin "
    "can create the requesting account)"
}


def parse_roles(roles: Iterable[str]) -> list[str]:
    """Known roles, sorted, without duplicates; refuses unknown ones by name, and combinations that
    `INCOMPATIBLE_ROLES` forbids."""
    cleaned: set[str] = set()
    for role in roles:
        if role not in Role.__members__:
            raise ValidationFailed(f"unknown role {role!r} (allowed: {', '.join(r.value for r in Role)})")
        cleaned.add(Role(role).value)
    if not cleaned:
        raise ValidationFailed("a user needs at least one role")
    for pair, why in INCOMPATIBLE_ROLES.items():
        if pair <= cleaned:
            raise ValidationFailed(f"roles {' and '.join(sorted(pair))} may not be held together: {why}")
    return sorted(cleaned)


def hash_password(password: str) -> str:
    """An argon2id hash of `password` after checking its length."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def count_users(session: Session) -> int:
    """How many users exist (zero means the first one is being bootstrapped)."""
    return int(session.scalar(select(func.count()).select_from(User)) or 0)


def get_user(session: Session, user_id: str) -> User:
    """The user with this id, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def get_user_by_email(session: Session, email: str) -> User:
    """The user with this email, or NotFound."""
    cleaned = email.strip().lower()
    user = session.scalar(select(User).where(User.email == cleaned))
    if user is None:
        raise NotFound(f"user {cleaned} not found")
    return user


def list_users(session: Session) -> list[User]:
    """Every user, by email."""
    return list(session.scalars(select(User).order_by(User.email)))


_EVENT_NAMES = frozenset(action.value for action in AuditAction)


def require_role(
    session: Session,
    *,
    roles: Iterable[Role],
    action: str,
    email: str | None = None,
    user_id: str | None = None,
) -> User:
    """The active user (by `email` or `user_id`) if they hold one of `roles`; else RoleRequired.

    `action` names the operation attempted, imperative (`consent.grant`, `publication.takedown`): it is
    kept in the `details.attempted` of the `access.denied` event, never as an event's action, so an
    event's past-tense name (`consent.granted`) is refused here (docs/contracts.md, audit vocabulary).
    The refusal is audited as `access.denied` (through `governance.uow.unit_of_work`).
    """
    if (email is None) == (user_id is None):
        raise ValueError("pass exactly one of `email` or `user_id`")
    if action in _EVENT_NAMES:
        raise ValueError(f"{action!r} is an audit event: require_role takes the attempted operation")
    user = get_user_by_email(session, email) if email is not None else get_user(session, str(user_id))
    wanted = [Role(role).value for role in roles]
    if not user.has_role(*wanted):
        why = "is disabled" if not user.active else f"lacks role {' or '.join(wanted)}"
        raise RoleRequired(
            f"user {user.email} {why} for {action}",
            refusal=Refusal(
                action=AuditAction.ACCESS_DENIED,
                actor=user.email,
                resource_type="user",
                resource_id=user.id,
                details={"attempted": action, "required_roles": wanted, "held_roles": user.roles},
            ),
        )
    return user


def add_user(
    session: Session,
    *,
    email: str,
    roles: Iterable[str],
    actor: str,
    display_name: str = "",
    password: str | None = None,
) -> User:
    """Create a user (audited as `user.created`); the password, if any, is stored as an argon2id hash."""
    cleaned = normalise_email(email)
    role_list = parse_roles(roles)
    if session.scalar(select(User.id).where(User.email == cleaned)) is not None:
        raise ValidationFailed(f"user {cleaned} already exists")
    user = User(
        email=cleaned,
        display_name=display_name.strip(),
        roles=role_list,
        password_hash=hash_password(password) if password is not None else None,
        created_by=actor,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        action=AuditAction.USER_CREATED,
        actor=actor,
        resource_type="user",
        resource_id=user.id,
        details={"email": cleaned, "roles": role_list, "has_password": password is not None},
    )
    return user


def set_roles(session: Session, *, user_id: str, roles: Iterable[str], actor: str) -> User:
    """Replace a user's roles (audited as `user.roles_changed` with before and after)."""
    user = get_user(session, user_id)
    role_list = parse_roles(roles)
    before = list(user.roles)
    user.roles = role_list
    session.flush()
    audit.record(
        session,
        action=AuditAction.USER_ROLES_CHANGED,
        actor=actor,
        resource_type="user",
        resource_id=user.id,
        details={"before": before, "after": role_list},
    )
    return user


def set_password(session: Session, *, user_id: str, password: str, actor: str) -> User:
    """Set a user's password (audited as `user.password_set`; the hash never enters the log)."""
    user = get_user(session, user_id)
    user.password_hash = hash_password(password)
    session.flush()
    audit.record(
        session, action=AuditAction.USER_PASSWORD_SET, actor=actor, resource_type="user", resource_id=user.id
    )
    return user


def disable_user(session: Session, *, user_id: str, actor: str) -> User:
    """Disable a user: they keep their history but can no longer act or sign in."""
    user = get_user(session, user_id)
    if not user.active:
        raise ValidationFailed(f"user {user.email} is already disabled")
    user.active = False
    user.disabled_at = utcnow()
    session.flush()
    audit.record(
        session, action=AuditAction.USER_DISABLED, actor=actor, resource_type="user", resource_id=user.id
    )
    return user


def record_sign_in(session: Session, user: User, *, client: str, via: str) -> None:
    """Audit a successful sign-in (`auth.signed_in`: from which client, through which surface)."""
    audit.record(
        session,
        action=AuditAction.AUTH_SIGNED_IN,
        actor=user.email,
        resource_type="user",
        resource_id=user.id,
        details={"client": client, "via": via},
    )


def record_sign_in_failed(session: Session, *, email: str, client: str, via: str) -> None:
    """Audit a refused sign-in (`auth.sign_in_failed`), by an anonymous actor named after its client."""
    audit.record(
        session,
        action=AuditAction.AUTH_SIGN_IN_FAILED,
        actor=f"anonymous:{client}",
        resource_type="user",
        details={"email": email.strip().lower()[:320], "via": via},
    )


def authenticate(session: Session, *, email: str, password: str) -> User:
    """The active user whose password this is; else AuthenticationFailed (the same message for every cause)."""
    failed = AuthenticationFailed(f"sign-in failed for {email.strip().lower()}")
    try:
        user = get_user_by_email(session, email)
    except NotFound:
        raise failed from None
    if not user.active or user.password_hash is None:
        raise failed
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise failed from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        session.flush()
    return user
