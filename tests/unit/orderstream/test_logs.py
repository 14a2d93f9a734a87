"""orderstream.core.logs: JSON lines or text, the order context on a line, levels in one place."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from dataclasses import replace

import pytest

from orderstream.core import logs
from orderstream.core.settings import Settings


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    for name in ("", "kafka", "aiokafka", "orderstream.test"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def configured(settings: Settings, stream: io.StringIO, program: str = "sink") -> None:
    config = logs.config(settings, program)
    config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)


def test_a_json_line_carries_the_program_level_logger_and_the_order_context(
    captured: io.StringIO,
) -> None:
    configured(Settings(log_format="json"), captured)
    logging.getLogger("orderstream.test").warning(
        "order %s dead-lettered",
        "o-1",
        extra=logs.context(order_id="o-1", topic="orders.requests", partition=3, offset=7),
    )
    line = json.loads(captured.getvalue().strip())
    assert line["message"] == "order o-1 dead-lettered"
    assert (line["program"], line["level"], line["logger"]) == (
        "sink",
        "WARNING",
        "orderstream.test",
    )
    assert (line["order_id"], line["topic"], line["partition"], line["offset"]) == (
        "o-1",
        "orders.requests",
        3,
        7,
    )
    assert "time" in line and "event_id" not in line  # unknown fields are left out


def test_a_text_line_ends_with_the_order_context(captured: io.StringIO) -> None:
    configured(Settings(log_format="text"), captured)
    logging.getLogger("orderstream.test").info(
        "healed", extra=logs.context(order_id="o-2", line_no=1, event_id=None)
    )
    text = captured.getvalue().strip()
    assert text.endswith("orderstream.test: healed [order_id=o-2 line_no=1]")


def test_levels_are_set_in_one_place(captured: io.StringIO) -> None:
    settings = Settings(log_level="warning", log_levels="orderstream.test=DEBUG, kafka=ERROR")
    configured(settings, captured)
    assert logging.getLogger().level == logging.WARNING
    assert logging.getLogger("orderstream.test").level == logging.DEBUG
    assert logging.getLogger("kafka").level == logging.ERROR
    assert logging.getLogger("aiokafka").level == logging.WARNING  # QUIET's


def test_bad_settings_are_refused_with_the_variable_named() -> None:
    with pytest.raises(ValueError, match="ORDERSTREAM_LOG_FORMAT"):
        logs.config(Settings(log_format="xml"), "sink")
    with pytest.raises(ValueError, match="ORDERSTREAM_LOG_LEVELS"):
        logs.config(replace(Settings(), log_levels="kafka"), "sink")
