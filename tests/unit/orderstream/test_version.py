"""The version is written once, in setup.cfg; the package and the CLI read it from there."""

from __future__ import annotations

import configparser
from pathlib import Path

from click.testing import CliRunner

import orderstream
from orderstream.cli import cli

SETUP_CFG = Path(__file__).resolve().parents[3] / "setup.cfg"


def test_package_version_is_setup_cfgs() -> None:
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    # the installed metadata is setup.cfg's as of the last install (make venv re-installs)
    assert orderstream.__version__ == config["metadata"]["version"]


def test_cli_prints_the_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"orderstream, version {orderstream.__version__}\n"
