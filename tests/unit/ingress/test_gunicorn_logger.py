"""The ingress's gunicorn logger: access-log atoms only when an access log is asked for."""

from __future__ import annotations

from unittest import mock

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from ingress.gunicorn_logger import Logger

pytestmark = pytest.mark.unit

DICT_CONFIG = {"version": 1, "disable_existing_loggers": False}


def config(**settings: object) -> Config:
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


def test_a_logging_dict_alone_builds_no_access_atoms() -> None:
    cfg = config(logconfig_dict=DICT_CONFIG)
    assert glogging.Logger(cfg).access_log_enabled  # gunicorn's own: on
    logger = Logger(cfg)
    assert not logger.access_log_enabled
    with mock.patch.object(Logger, "atoms") as atoms:
        logger.access(mock.Mock(), mock.Mock(), {}, mock.Mock())
    atoms.assert_not_called()


def test_an_access_log_file_turns_access_lines_on() -> None:
    logger = Logger(config(logconfig_dict=DICT_CONFIG, accesslog="-"))
    assert logger.access_log_enabled
