"""The optional PostgreSQL replica of the local stack: where reads go, and its program."""

from __future__ import annotations

from pathlib import Path

from orderstream.core.settings import Settings
from orderstream.stack import database
from orderstream.stack.config import StackConfig
from orderstream.stack.runner import stack_values

KEYS = {"STOREFRONT_KEY": "s", "ADMIN_KEY": "a"}


def config(local: Path, **environ: str) -> StackConfig:
    return StackConfig.from_env({"ORDERSTREAM_STACK_DIR": str(local), **environ})


def test_without_a_replica_reads_go_to_the_primary(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    values = stack_values(cfg, Settings(), KEYS, None)
    assert values["DATABASE_READ_URL"] == values["DATABASE_URL"]
    assert values["ORDERSTREAM_PG_REPLICA"] == "0"
    assert Settings(database_read_url="").read_database_url == Settings().database_url


def test_with_a_replica_reads_go_to_its_port_and_make_up_remembers_it(tmp_path: Path) -> None:
    cfg = config(tmp_path, ORDERSTREAM_PG_REPLICA="1", ORDERSTREAM_STACK_PORT_OFFSET="500")
    values = stack_values(cfg, Settings(), KEYS, None)
    assert values["DATABASE_URL"].endswith("@127.0.0.1:15932/orderstream")
    assert values["DATABASE_READ_URL"].endswith("@127.0.0.1:15933/orderstream")
    settings = Settings.from_env(values)
    assert settings.read_database_url == values["DATABASE_READ_URL"]
    assert settings.database_url == values["DATABASE_URL"]  # the sink writes to the primary

    (tmp_path / "stack.env").write_text("ORDERSTREAM_PG_REPLICA=1\n")
    assert config(tmp_path).pg_replica
    assert not config(tmp_path, ORDERSTREAM_PG_REPLICA="0").pg_replica


def test_the_replica_is_a_hot_standby_started_only_after_its_base_backup(tmp_path: Path) -> None:
    cfg = config(tmp_path, ORDERSTREAM_PG_REPLICA="1")
    program = database.replica_program(cfg)
    assert program.name == database.REPLICA
    assert not program.autostart  # `up` starts it once pg_basebackup has made its data
    command = list(program.command)
    assert command[command.index("-p") + 1] == str(cfg.pg_replica_port)
    assert "hot_standby=on" in command
    data, _ = database.replica_dirs(cfg)
    assert command[command.index("-D") + 1] == str(data)
    assert data != database.cluster_home(cfg.local) / "data"
