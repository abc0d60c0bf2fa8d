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


@pytest.mark.parametrize(
    "value",
    [
        "change-me-in-production-this-is-not-a-secret",  # the old built-in default
        "change-me-to-a-long-random-string",  # the old docker-compose value
        "x" * 31,
        "é" * 15,  # 30 bytes: the limit counts bytes, not characters
    ],
)
def test_public_or_short_secret_key_is_refused_with_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("REMARKET_SECRET_KEY", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("REMARKET_SECRET_KEY: ")
    assert "secrets.token_urlsafe(32)" in message
    assert "\n" not in message


def test_a_32_byte_secret_key_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMARKET_SECRET_KEY", "k" * 32)
    assert load_settings().secret_key == "k" * 32


def test_no_secret_key_means_none_and_building_the_app_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from remarket_mailer.bootstrap import build_app

    monkeypatch.delenv("REMARKET_SECRET_KEY", raising=False)
    settings = load_settings(database_url="sqlite://")
    assert settings.secret_key == ""
    with pytest.raises(ConfigError) as info:
        build_app(settings)
    assert str(info.value).startswith("REMARKET_SECRET_KEY is not set")
    assert "secrets.token_urlsafe(32)" in str(info.value)


def test_setting_that_is_not_json_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMARKET_PROVIDERS", "bulk=smtp://x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == "REMARKET_PROVIDERS: not valid JSON"
