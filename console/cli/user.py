"""`likeness user`: people and their roles. The first user is bootstrapped as an admin without --actor."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from console.cli.context import (
    ActorOption,
    CliError,
    acting_user,
    governance_command,
    out,
    show_time,
)
from flows.runtime.root import Runtime
from governance import users
from governance.enums import Role
from governance.uow import unit_of_work

app = typer.Typer(help="Users and roles.", no_args_is_help=True)
ADMIN = (Role.admin,)
RolesOption = Annotated[
    list[str],
    typer.Option("--role", help="compliance, operator, reviewer, auditor or admin (repeat for several)."),
]


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise CliError("no password on stdin")
    return password


def _actor_for_add(ctx: Runtime, actor: str | None, roles: list[str]) -> str:
    with ctx.sessions() as session:
        first = users.count_users(session) == 0
    if first:
        if Role.admin.value not in roles:
            raise CliError("the first user must hold the admin role (--role admin)")
        return actor or "system:bootstrap"
    if not actor:
        raise CliError("--actor is required (an admin's email)")
    return acting_user(ctx, actor, ADMIN, "user.create").email


@app.command("add")
def add(
    email: Annotated[str, typer.Argument(help="The new user's email.")],
    role: RolesOption,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a password from stdin.")
    ] = False,
    actor: Annotated[
        str | None, typer.Option("--actor", envvar="LIKENESS_ACTOR", help="Admin acting.")
    ] = None,
) -> None:
    """Add a user with one or more roles (admin only; the very first user must be an admin)."""
    with governance_command() as ctx:
        acting = _actor_for_add(ctx, actor, role)
        password = _read_password() if password_stdin else None
        with unit_of_work(ctx.sessions) as session:
            user = users.add_user(
                session, email=email, roles=role, actor=acting, display_name=name, password=password
            )
        out.print(f"user {user.email} added with roles {', '.join(user.roles)} (id {user.id})")


@app.command("list")
def list_users(actor: ActorOption) -> None:
    """List users and their roles (admin or auditor)."""
    with governance_command() as ctx:
        acting_user(ctx, actor, (Role.admin, Role.auditor), "user.list")
        with ctx.sessions() as session:
            rows = users.list_users(session)
        table = Table("email", "roles", "active", "password", "created", "id")
        for user in rows:
            table.add_row(
                user.email,
                ", ".join(user.roles),
                "yes" if user.active else "no",
                "set" if user.password_hash else "-",
                show_time(user.created_at),
                user.id,
            )
        out.print(table)


@app.command("roles")
def set_roles(email: str, role: RolesOption, actor: ActorOption) -> None:
    """Replace a user's roles (admin only)."""
    with governance_command() as ctx:
        admin = acting_user(ctx, actor, ADMIN, "user.set_roles")
        with unit_of_work(ctx.sessions) as session:
            user = users.set_roles(
                session, user_id=users.get_user_by_email(session, email).id, roles=role, actor=admin.email
            )
        out.print(f"user {user.email} now holds {', '.join(user.roles)}")


@app.command("password")
def set_password(email: str, actor: ActorOption) -> None:
    """Set a user's password, read from stdin (admin only)."""
    with governance_command() as ctx:
        admin = acting_user(ctx, actor, ADMIN, "user.set_password")
        password = _read_password()
        with unit_of_work(ctx.sessions) as session:
            user = users.set_password(
                session,
                user_id=users.get_user_by_email(session, email).id,
                password=password,
                actor=admin.email,
            )
        out.print(f"password set for {user.email}")


@app.command("disable")
def disable(email: str, actor: ActorOption) -> None:
    """Disable a user: their history stays, they can no longer act or sign in (admin only)."""
    with governance_command() as ctx:
        admin = acting_user(ctx, actor, ADMIN, "user.disable")
        with unit_of_work(ctx.sessions) as session:
            user = users.disable_user(
                session, user_id=users.get_user_by_email(session, email).id, actor=admin.email
            )
        out.print(f"user {user.email} disabled")
