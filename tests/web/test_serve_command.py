"""`likeness console serve` refuses unsafe binds with one line (the serving itself is covered by the
browser tests, which run the same app under uvicorn)."""

from __future__ import annotations

from typer.testing import CliRunner

from console.cli.app import app


def test_serve_refuses_a_public_address_without_allow_remote(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LIKENESS_VAR_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["console", "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "refusing to bind 0.0.0.0: the console serves loopback only unless --allow-remote" in result.output
    assert not (tmp_path / "console").exists()  # nothing was set up


def test_serve_refuses_insecure_cookies_off_loopback(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LIKENESS_VAR_DIR", str(tmp_path))
    result = CliRunner().invoke(
        app, ["console", "serve", "--host", "10.1.2.3", "--allow-remote", "--insecure-cookies"]
    )
    assert result.exit_code == 1
    assert "--insecure-cookies is only allowed on a loopback address" in result.output


def test_console_group_is_mounted() -> None:
    result = CliRunner().invoke(app, ["console", "--help"])
    assert result.exit_code == 0 and "serve" in result.output
