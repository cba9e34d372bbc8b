"""Settings come from `LIKENESS_*` variables; a malformed one refuses to load and names the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from flows.runtime.settings import Settings, load_settings
from governance.database import DEFAULT_DATABASE_URL


def test_defaults_are_embedded_and_let_the_animator_pick_its_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIKENESS_DATABASE_URL", "LIKENESS_INFERENCE_BATCH_SIZE", "LIKENESS_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.database_url.startswith("sqlite:///var/")
    assert settings.inference_batch_size is None
    assert settings.device == "auto"


def test_environment_overrides_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIKENESS_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/likeness")
    monkeypatch.setenv("LIKENESS_INFERENCE_BATCH_SIZE", "8")
    settings = Settings()
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.inference_batch_size == 8


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("LIKENESS_DEVICE", "tpu", "device"),
        ("LIKENESS_INFERENCE_BATCH_SIZE", "0", "inference_batch_size"),
        ("LIKENESS_RETENTION_DAYS", "soon", "retention_days"),
    ],
)
def test_malformed_values_refuse_and_name_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert [error["loc"][0] for error in caught.value.errors()] == [field]


def test_as_environment_gives_a_child_process_the_same_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    original = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        s3_secret_key=SecretStr("not the default secret"),
        s3_secure=True,
        allowed_input_dirs=[tmp_path / "a", tmp_path / "b c"],
        mcnet_checkpoint=tmp_path / "model.pth",
        inference_mode="fast",
        inference_batch_size=4,
        review_timeout_hours=1.5,
        console_session_secret=SecretStr("s" * 40),
    )
    environment = original.as_environment()
    assert environment["LIKENESS_S3_SECURE"] == "true"
    assert environment["LIKENESS_S3_SECRET_KEY"] == "not the default secret"  # revealed: the child needs it
    assert "LIKENESS_SIGNING_KEY_PATH" not in environment  # None stays unset, so the child's default applies
    for name in [key for key in os.environ if key.startswith("LIKENESS_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    again = load_settings()

    def revealed(settings: Settings) -> dict[str, object]:
        dumped = settings.model_dump()
        return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in dumped.items()}

    assert revealed(again) == revealed(original)
