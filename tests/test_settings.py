"""Settings come from `LIKENESS_*` variables; a malformed one refuses to load and names the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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
