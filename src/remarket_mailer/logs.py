"""Log lines of the long-running processes: key=value text, or one JSON object per line.

``REMARKET_LOG_FORMAT=json`` writes every record as ``{"time", "level", "logger", "message",
...}``, followed by the log call's own fields: the ``key=%s`` pairs of its format string
with their arguments (``log.warning("provider=%s delivery_ids=%s timeout", name, ids)`` adds
``"provider"`` and ``"delivery_ids"``, numbers staying numbers) and anything passed with
``extra=``. uvicorn's access log gets the same format (``uvicorn_log_config``), with the
request's ``client``, ``method``, ``path``, ``http_version`` and ``status`` as fields.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"

# printf-style conversions as logging applies them: %s, %d, %.1f, %(name)s, %*d, %%.
_CONVERSION = re.compile(
    r"%(?:\((?P<key>\w+)\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?"
    r"[hlL]?(?P<type>[diouxXeEfFgGcrsa%])"
)
_FIELD_NAME = re.compile(r"(\w+)=\Z")
# Attributes every LogRecord has; the others came with ``extra=``. uvicorn adds its own
# coloured copy of each message, which is not a field.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


@lru_cache(maxsize=1024)
def _named_arguments(msg: str) -> tuple[tuple[str, int | str], ...]:
    """(field name, argument index or mapping key) of each ``name=%x`` in a format string."""
    found: list[tuple[str, int | str]] = []
    index = 0
    for match in _CONVERSION.finditer(msg):
        if match["type"] == "%":
            continue
        name = _FIELD_NAME.search(msg, 0, match.start())
        if match["key"] is not None:
            if name:
                found.append((name[1], match["key"]))
            continue
        index += (match["width"] == "*") + (match["precision"] == "*")  # '*' takes one too
        if name:
            found.append((name[1], index))
        index += 1
    return tuple(found)


def call_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's ``key=%x`` fields with their argument values (see the module doc)."""
    if not isinstance(record.msg, str) or not record.args:
        return {}
    fields: dict[str, Any] = {}
    args = record.args
    for name, where in _named_arguments(record.msg):
        try:
            if isinstance(where, str):
                fields[name] = args[where]  # type: ignore[call-overload]
            elif isinstance(args, tuple):
                fields[name] = args[where]
        except (IndexError, KeyError, TypeError):
            continue  # a malformed call: getMessage() reports it
    return fields


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: numbers, strings, booleans, null, lists; else str()."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, message, then fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in self.fields(record).items():
            entry.setdefault(name, _plain(value))
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                entry.setdefault(name, _plain(value))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        return call_fields(record)


class JsonAccessFormatter(JsonFormatter):
    """uvicorn's access records, whose arguments are (client, method, path, version, status)."""

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, http_version, status = args
            return {
                "client": client,
                "method": method,
                "path": path,
                "http_version": http_version,
                "status": status,
            }
        return call_fields(record)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, log_format: LogFormat) -> None:
    """Send this process's records to stderr in ``log_format``."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])


def uvicorn_log_config(log_format: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """uvicorn's logging config in ``log_format``: its own loggers, its access log, and the
    root logger, which the API's worker processes (spawned, so unconfigured) need too."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    if log_format == "json":
        config["formatters"]["default"] = {"()": f"{__name__}.JsonFormatter"}
        config["formatters"]["access"] = {"()": f"{__name__}.JsonAccessFormatter"}
        config["formatters"]["remarket"] = {"()": f"{__name__}.JsonFormatter"}
    else:
        config["formatters"]["remarket"] = {"format": TEXT_FORMAT}
    config["handlers"]["remarket"] = {
        "class": "logging.StreamHandler",
        "formatter": "remarket",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["remarket"], "level": level}
    return config
