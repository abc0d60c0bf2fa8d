import pytest

from remarket_mailer.config import load_settings
from remarket_mailer.errors import ConfigError


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "BROKER_URL", "PROVIDER_URL"):
        monkeypatch.delenv(f"REMARKET_{name}", raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite:///./remarket.db"
    assert settings.broker_url == "stub://"
    assert settings.provider_url == "file://./outbox"


def test_postgres_url_uses_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMARKET_DATABASE_URL", "postgresql://u@db/remarket")
    assert load_settings().database_url == "postgresql+psycopg://u@db/remarket"


def test_api_keys_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMARKET_API_KEYS", " a , b,,")
    assert load_settings().api_keys == ["a", "b"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BROKER_URL", "kafka://x"),
        ("DATABASE_URL", "mysql://x"),
        ("PROVIDER_URL", "pigeon://x"),
        ("PUBLIC_URL", "not a url"),
        ("SECRET_KEY", "short"),
        ("BATCH_SIZE", "lots"),
    ],
)
def test_bad_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"REMARKET_{name}", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"REMARKET_{name}: ")
    assert "\n" not in message
