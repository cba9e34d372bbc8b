"""After `make demo` the console is usable: the demo's admin account, with the password it printed once,
signs in to the console and manages the other accounts."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from console.cli.demo import console_instructions
from flows.demo.steps import ADMIN, DemoResult, seed_admin
from governance.schema import User
from governance.uow import unit_of_work
from tests.web.conftest import WebWorld


def test_demo_admin_signs_in_to_the_console_with_the_printed_password(web: WebWorld) -> None:
    email, password = seed_admin(web.runtime)
    assert email == ADMIN and len(password) >= 12
    with unit_of_work(web.sf) as db:
        admin = db.scalars(select(User).where(User.email == ADMIN)).one()
        assert admin.roles == ["admin"] and password not in (admin.password_hash or "")
    client = web.client()
    response = web.sign_in(client, ADMIN, password)
    assert response.status_code == 303
    users_page = client.get("/admin/users")
    assert users_page.status_code == 200 and ADMIN in users_page.text

    text = console_instructions(
        DemoResult(
            var_dir=Path("/srv/var/demo"),
            checkpoint=Path("m.pth"),
            demo_model=True,
            s3_endpoint="127.0.0.1:1",
            admin_email=email,
            admin_password=password,
        )
    )
    assert text.count(password) == 1 and "LIKENESS_VAR_DIR=/srv/var/demo" in text
    assert "sqlite:////srv/var/demo/likeness.db" in text and "likeness console serve" in text
