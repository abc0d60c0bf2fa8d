"""REMARKET_LOG_FORMAT=json: one JSON object per line, with the log call's own fields."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest

from remarket_mailer.config import load_settings
from remarket_mailer.errors import ConfigError
from remarket_mailer.logs import (
    TEXT_FORMAT,
    JsonAccessFormatter,
    JsonFormatter,
    call_fields,
    uvicorn_log_config,
)


def record(
    msg: str, *args: Any, name: str = "remarket_mailer.services.sending", **extra: Any
) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args or None, None)
    made.__dict__.update(extra)
    return made


def line(made: logging.LogRecord, formatter: logging.Formatter | None = None) -> dict[str, Any]:
    text = (formatter or JsonFormatter()).format(made)
    assert "\n" not in text
    parsed = json.loads(text)
    assert isinstance(parsed, dict)
    return parsed


def test_a_line_has_time_level_logger_message_and_the_calls_fields() -> None:
    entry = line(record("provider=%s delivery_ids=%s status=%s timeout", "smtp", "4,5", 429))
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "remarket_mailer.services.sending"
    assert entry["message"] == "provider=smtp delivery_ids=4,5 status=429 timeout"
    assert entry["provider"] == "smtp"
    assert entry["delivery_ids"] == "4,5"
    assert entry["status"] == 429  # a number stays a number
    assert entry["time"].endswith("+00:00") and len(entry["time"]) == len(
        "2026-11-02T09:00:00.000+00:00"
    )


def test_arguments_without_a_name_are_in_the_message_only() -> None:
    entry = line(record("delivery=%d template failed: %s", 17, "boom"))
    assert entry["delivery"] == 17
    assert entry["message"] == "delivery=17 template failed: boom"
    assert set(entry) == {"time", "level", "logger", "message", "delivery"}


def test_star_widths_percent_signs_and_mappings_keep_the_arguments_in_step() -> None:
    entry = line(record("rate=%.1f%% width=%*d n=%s", 5.0, 4, 7, "x"))
    assert (entry["rate"], entry["width"], entry["n"]) == (5.0, 7, "x")
    assert entry["message"] == "rate=5.0% width=   7 n=x"
    mapped = logging.LogRecord("x", logging.INFO, __file__, 1, "id=%(id)s", ({"id": 3},), None)
    assert line(mapped)["id"] == 3


def test_extra_fields_lists_and_exceptions() -> None:
    made = record("sent", delivery_id=9, providers=("smtp", "ses"))
    try:
        raise ValueError("bad")
    except ValueError:
        made.exc_info = sys.exc_info()
    entry = line(made)
    assert entry["delivery_id"] == 9
    assert entry["providers"] == ["smtp", "ses"]
    assert "ValueError: bad" in entry["exception"]


def test_a_field_never_overwrites_the_base_keys_and_odd_values_become_text() -> None:
    entry = line(record("level=%s rate=%s at=%s", "x", float("nan"), object()))
    assert entry["level"] == "WARNING"
    assert entry["rate"] == "nan"
    assert entry["at"].startswith("<object object")


def test_a_malformed_call_loses_only_the_missing_field() -> None:
    made = record("provider=%s delivery=%s", "smtp")  # one argument short
    with pytest.raises(TypeError):
        made.getMessage()  # logging reports this itself ("--- Logging error ---")
    assert call_fields(made) == {"provider": "smtp"}


def test_uvicorn_access_records_get_request_fields() -> None:
    made = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/health", "1.1", 200),
        None,
    )
    entry = line(made, JsonAccessFormatter())
    assert entry["message"] == '127.0.0.1:5000 - "GET /v1/health HTTP/1.1" 200'
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/v1/health", 200)
    assert entry["client"] == "127.0.0.1:5000" and entry["http_version"] == "1.1"


def test_uvicorn_config_json_and_text() -> None:
    json_config = uvicorn_log_config("json")
    assert json_config["formatters"]["access"] == {"()": "remarket_mailer.logs.JsonAccessFormatter"}
    assert json_config["formatters"]["default"] == {"()": "remarket_mailer.logs.JsonFormatter"}
    assert json_config["root"]["handlers"] == ["remarket"]
    text_config = uvicorn_log_config("text")
    # Text keeps uvicorn's own lines; the root logger gets the project's key=value format.
    assert text_config["formatters"]["access"]["()"] == "uvicorn.logging.AccessFormatter"
    assert text_config["formatters"]["remarket"] == {"format": TEXT_FORMAT}


def test_a_bad_log_format_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMARKET_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == "REMARKET_LOG_FORMAT: Input should be 'text' or 'json'"
    monkeypatch.setenv("REMARKET_LOG_FORMAT", "json")
    assert load_settings().log_format == "json"
