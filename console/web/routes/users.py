"""The admin's page: user accounts and their roles (creation goes through `governance.users`)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from console.web.pages import redirect, render
from console.web.state import console, current_user
from governance.enums import Role
from governance.uow import unit_of_work
from governance.users import add_user, list_users

router = APIRouter(prefix="/admin")


@router.get("/users", name="users", response_class=HTMLResponse)
def users(request: Request) -> Response:
    """Every account, its roles and whether it is active."""
    with unit_of_work(console(request).runtime.sessions) as db:
        people = list_users(db)
    return render(request, "users.html", people=people, roles=[r.value for r in Role])


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
        user = add_user(db, email=email, roles=roles, actor=current_user(request).email,
                        display_name=display_name, password=password)
        created = user.email
    return redirect(request, "users", flash=f"user {created} created")
