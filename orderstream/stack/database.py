"""PostgreSQL from the Debian server binaries: own data dir under .local, own port and socket.

postgres refuses to run as root, so when we are root the cluster belongs to the ``postgres``
OS user (its directories are chowned to it); otherwise it runs as the current user.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from orderstream.stack.config import StackConfig
from orderstream.stack.supervisor import Program

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"


def bin_dir() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if not found:
        raise RuntimeError(
            "no PostgreSQL server in /usr/lib/postgresql (apt-get install postgresql)"
        )
    return found[-1].parent


def os_user() -> str | None:
    """The OS user to run postgres as, or None for the current user."""
    return "postgres" if os.geteuid() == 0 else None


def _dirs(cfg: StackConfig) -> tuple[Path, Path]:
    return cfg.local / "pg" / "data", cfg.local / "pg" / "run"


def prepare(cfg: StackConfig) -> None:
    data, sock = _dirs(cfg)
    sock.mkdir(parents=True, exist_ok=True)
    user = os_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (cfg.local / "pg", sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    if (data / "PG_VERSION").exists():
        return
    logger.info("initdb %s", data)
    data.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(data, user, user)
    data.chmod(0o700)
    prefix = ["runuser", "-u", user, "--"] if user else []
    subprocess.run(
        [
            *prefix,
            str(bin_dir() / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--no-locale",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ],
        check=True,
        capture_output=True,
    )


def program(cfg: StackConfig) -> Program:
    data, sock = _dirs(cfg)
    command = [
        str(bin_dir() / "postgres"),
        "-D",
        str(data),
        "-p",
        str(cfg.pg_port),
        "-k",
        str(sock),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "max_connections=300",
        "-c",
        "shared_buffers=256MB",
        "-c",
        "log_min_messages=warning",
    ]
    return Program(
        "postgres",
        command,
        cfg.local / "pg",
        user=os_user(),
        priority=10,
        stopsignal="INT",
        stopwaitsecs=60,
        startsecs=2,
    )


def superuser(cfg: StackConfig, **options: Any) -> psycopg.Connection[Any]:
    """A connection as the cluster's superuser over its Unix socket (trust auth), autocommit."""
    _, sock = _dirs(cfg)
    return psycopg.connect(
        host=str(sock),
        port=cfg.pg_port,
        user=SUPERUSER,
        dbname="postgres",
        autocommit=True,
        **options,
    )


def ensure_database(cfg: StackConfig) -> None:
    """Role and database ``orderstream`` (password ``orderstream``), created once."""
    with superuser(cfg) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'orderstream'").fetchone() is None:
            conn.execute("CREATE ROLE orderstream LOGIN PASSWORD 'orderstream'")
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = 'orderstream'").fetchone()
            is None
        ):
            conn.execute("CREATE DATABASE orderstream OWNER orderstream")


def ping(database_url: str) -> None:
    with psycopg.connect(database_url.replace("+psycopg", ""), connect_timeout=3) as conn:
        conn.execute("SELECT 1")


def ping_superuser(cfg: StackConfig) -> None:
    with superuser(cfg, connect_timeout=3) as conn:
        conn.execute("SELECT 1")
