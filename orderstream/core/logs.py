"""Logging for every program, set in one place: JSON lines or text, and the levels.

``ORDERSTREAM_LOG_FORMAT``: ``json`` (one object per line, python-json-logger; what the
stack runs) or ``text`` (for a person at a terminal, the default elsewhere).
``ORDERSTREAM_LOG_LEVEL``: the root level. ``ORDERSTREAM_LOG_LEVELS``: per-logger levels,
``"kafka=ERROR,aiokafka=WARNING"``, applied after ``QUIET``'s.

A log line about an order carries its context as fields (``context``): ``order_id``, and
``event_id``, ``topic``, ``partition`` and ``offset`` where known. JSON lines hold them as
keys; text lines end with them as ``key=value``.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from orderstream.core.settings import Settings

CONTEXT = ("order_id", "line_no", "event_id", "product_id", "topic", "partition", "offset")
# chatty libraries: one line per retry or reconnect at INFO
QUIET = {"kafka": "WARNING", "aiokafka": "WARNING", "alembic.runtime.migration": "WARNING"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"


def context(**fields: Any) -> dict[str, Any]:
    """``extra=`` for a log call about an order: the fields that are known."""
    return {key: value for key, value in fields.items() if value is not None}


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, then the record's order context as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        found = [f"{key}={getattr(record, key)}" for key in CONTEXT if hasattr(record, key)]
        return f"{line} [{' '.join(found)}]" if found else line


def levels(settings: Settings) -> dict[str, str]:
    """Per-logger levels: ``QUIET``, then ``log_levels``' entries."""
    found = dict(QUIET)
    for entry in filter(None, (e.strip() for e in settings.log_levels.split(","))):
        name, _, level = entry.partition("=")
        if not level:
            raise ValueError(f"ORDERSTREAM_LOG_LEVELS entry {entry!r}: want logger=LEVEL")
        found[name.strip()] = level.strip().upper()
    return found


def config(settings: Settings, program: str, own: tuple[str, ...] = ()) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``program`` (its name is a field of every
    JSON line); the root logs to stderr, and so do the loggers named in ``own`` that do not
    propagate (gunicorn's)."""
    if settings.log_format not in ("json", "text"):
        raise ValueError(f"ORDERSTREAM_LOG_FORMAT is {settings.log_format!r}: want json or text")
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "static_fields": {"program": program},
        }
        if settings.log_format == "json"
        else {"()": TextFormatter, "fmt": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["default"]},
        "loggers": {
            **{name: {"handlers": ["default"], "propagate": False} for name in own},
            **{name: {"level": level} for name, level in levels(settings).items()},
        },
    }


def configure(settings: Settings, program: str) -> None:
    logging.config.dictConfig(config(settings, program))
