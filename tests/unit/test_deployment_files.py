"""The deployment files ship no usable secret: docker compose asks for them instead."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT

REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")


def test_compose_requires_the_secret_key_and_api_keys_from_the_environment() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for service in ("api", "worker", "scheduler", "migrate"):
        environment = compose["services"][service]["environment"]
        for name in ("REMARKET_SECRET_KEY", "REMARKET_API_KEYS"):
            # ${NAME:?message}: compose stops with the message when NAME is unset or empty.
            found = REQUIRED.match(str(environment[name]))
            assert found, f"{service}: {name} = {environment[name]!r} is a fixed value"
            assert found["name"] == name


def test_env_example_names_every_required_variable_with_no_value() -> None:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    settings = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert settings == {"REMARKET_SECRET_KEY": "", "REMARKET_API_KEYS": ""}
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_mailpit_web_ui_is_published_on_this_host_only() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    # It shows every email caught, with every personal discount code and unsubscribe link.
    assert compose["services"]["mailpit"]["ports"] == ["127.0.0.1:8025:8025"]
