"""The console behind a real TLS-terminating reverse proxy: Debian's nginx on loopback in front of uvicorn.

nginx talks to the app from 127.0.0.2 (`proxy_bind`), the one trusted proxy address, so the browser's
own address (127.0.0.1) and a forged `X-Forwarded-For` can be told apart. Skipped where nginx is not
installed (`apt-get install nginx-light`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from console.web import WebConfig
from governance.schema import AuditEvent, Subject
from governance.uow import unit_of_work
from tests.web.conftest import PASSWORD, WebWorld, build_world, csrf_from
from tests.web.test_browser import LiveServer

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(
    not Path(NGINX).exists(), reason="nginx is not installed (apt-get install nginx-light)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start listening")


@pytest.fixture
def behind_nginx(sqlite_db_url: str, tmp_path: Path) -> Iterator[tuple[WebWorld, str]]:
    port = free_port()
    origin = f"https://127.0.0.1:{port}"
    world = build_world(
        tmp_path,
        sqlite_db_url,
        config=lambda clock: WebConfig(clock=clock, public_origin=origin, trusted_proxies=("127.0.0.2",)),
    )
    proxy = tmp_path / "nginx"
    for folder in ("logs", "tmp"):
        (proxy / folder).mkdir(parents=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(proxy / "key.pem"),
            "-out",
            str(proxy / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with LiveServer(world.app) as app_server:
        conf = proxy / "nginx.conf"
        conf.write_text(f"""
daemon off; worker_processes 1; user root; pid {proxy}/nginx.pid; error_log {proxy}/logs/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {proxy}/tmp/body; proxy_temp_path {proxy}/tmp/proxy; fastcgi_temp_path {proxy}/tmp/fcgi;
  uwsgi_temp_path {proxy}/tmp/uwsgi; scgi_temp_path {proxy}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {proxy}/cert.pem; ssl_certificate_key {proxy}/key.pem;
    location / {{
      proxy_pass http://127.0.0.1:{app_server.port};
      proxy_bind 127.0.0.2;
      proxy_set_header Host $host:$server_port;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
""")
        process = subprocess.Popen(
            [NGINX, "-p", str(proxy), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(port, process, proxy / "logs" / "error.log")
            yield world, origin
        finally:
            process.terminate()
            process.wait(timeout=30)
            world.runtime.close()


def browser_like(origin: str, **headers: str) -> httpx.Client:
    """What a browser on this machine sends through the proxy: TLS, its Origin on form posts."""
    return httpx.Client(
        base_url=origin,
        verify=False,
        follow_redirects=False,
        timeout=30,
        headers={"origin": origin, **headers},
    )


def sign_in(client: httpx.Client, email: str, password: str = PASSWORD) -> Any:
    token = csrf_from(client.get("/sign-in").text)
    return client.post("/sign-in", data={"email": email, "password": password, "csrf_token": token})


def test_forms_work_through_nginx_and_the_client_address_is_the_browsers(
    behind_nginx: tuple[WebWorld, str],
) -> None:
    world, origin = behind_nginx
    with browser_like(origin) as client:
        assert sign_in(client, "compliance@example.org").status_code == 303
        token = csrf_from(client.get("/subjects").text)
        created = client.post(
            "/subjects", data={"reference": "S-2", "display_name": "Bo", "csrf_token": token}
        )
        assert created.status_code == 303, created.text
        assert "default-src 'none'" in client.get("/nowhere").headers["content-security-policy"]
    with browser_like(
        origin, **{"x-forwarded-for": "203.0.113.9"}
    ) as forger:  # a claim nginx only appends to
        assert sign_in(forger, "nobody@example.org", "wrong password!!").status_code == 401
    with unit_of_work(world.sf) as db:
        assert len(list(db.scalars(select(Subject)))) == 2
        signed_in = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.signed_in")).one()
        failed = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.sign_in_failed")).one()
    assert signed_in.details["client"] == "127.0.0.1"  # the browser, not nginx (127.0.0.2)
    assert failed.actor == "anonymous:127.0.0.1"  # the forged 203.0.113.9 is not believed


def test_another_origin_is_refused_through_nginx(behind_nginx: tuple[WebWorld, str]) -> None:
    world, origin = behind_nginx
    with browser_like(origin) as client:
        assert sign_in(client, "compliance@example.org").status_code == 303
        token = csrf_from(client.get("/subjects").text)
        refused = client.post(
            "/subjects",
            data={"reference": "S-2", "display_name": "Bo", "csrf_token": token},
            headers={"origin": "https://evil.example"},
        )
        assert refused.status_code == 403
    with unit_of_work(world.sf) as db:
        assert len(list(db.scalars(select(Subject)))) == 1
