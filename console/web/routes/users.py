"""The admin's page: user accounts and their roles. Every change goes through `governance.users`, which
validates it (role combinations included) and writes the audit event."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from console.web.errors import BadInput
from console.web.pages import redirect, render
from console.web.state import console, current_user
from governance.enums import Role
from governance.uow import unit_of_work
from governance.users import add_user, disable_user, get_user, list_users, set_password, set_roles

router = APIRouter(prefix="/admin")


@router.get("/users", name="users", response_class=HTMLResponse)
def users(request: Request) -> Response:
    """Every account, its roles and whether it is active, with the forms to change them."""
    with unit_of_work(console(request).runtime.sessions) as db:
        people = list_users(db)
    return render(
        request, "users.html", people=people, roles=[r.value for r in Role], me=current_user(request)
    )


@router.post("/users", name="user_create")
def user_create(
    request: Request,
    email: str = Form(max_length=320),
    display_name: str = Form("", max_length=200),
    password: str = Form(max_length=1024),
    roles: list[str] = Form(),
) -> Response:
    """Create an account (argon2id hash, audited `user.created` by governance)."""
    with unit_of_work(console(request).runtime.sessions) as db:
        user = add_user(
            db,
            email=email,
            roles=roles,
            actor=current_user(request).email,
            display_name=display_name,
            password=password,
        )
        created = user.email
    return redirect(request, "users", flash=f"user {created} created")


@router.post("/users/{user_id}/roles", name="user_roles")
def user_roles(request: Request, user_id: str, roles: list[str] = Form([])) -> Response:
    """Replace an account's roles (audited `user.roles_changed` with before and after)."""
    me = current_user(request)
    with unit_of_work(console(request).runtime.sessions) as db:
        if user_id == me.id and Role.admin.value not in roles:
            raise BadInput("you cannot take the admin role from your own account (another admin can)")
        user = set_roles(db, user_id=user_id, roles=roles, actor=me.email)
        message = f"user {user.email} now holds {', '.join(user.roles)}"
    return redirect(request, "users", flash=message)


@router.post("/users/{user_id}/disable", name="user_disable")
def user_disable(request: Request, user_id: str) -> Response:
    """Disable an account: its history stays, its sessions end at the next request."""
    me = current_user(request)
    if user_id == me.id:
        raise BadInput("you cannot disable your own account (another admin can)")
    with unit_of_work(console(request).runtime.sessions) as db:
        user = disable_user(db, user_id=user_id, actor=me.email)
        message = f"user {user.email} disabled"
    return redirect(request, "users", flash=message)


@router.post("/users/{user_id}/password", name="user_password")
def user_password(request: Request, user_id: str, password: str = Form(max_length=1024)) -> Response:
    """Set a new password for an account (hash only; audited `user.password_set`)."""
    me = current_user(request)
    with unit_of_work(console(request).runtime.sessions) as db:
        get_user(db, user_id)
        user = set_password(db, user_id=user_id, password=password, actor=me.email)
        message = f"password reset for {user.email}: tell them through a channel other than email"
    return redirect(request, "users", flash=message)
