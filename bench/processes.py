"""Processes the harness owns: the baselines' gunicorn servers and queue worker, their databases."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.exceptions import BenchError, DatabaseSetupError
from orderstream.core.settings import REPO_ROOT
from orderstream.stack import database
from orderstream.stack.config import StackConfig

logger = logging.getLogger(__name__)

BIN = Path(sys.executable).parent


def url_answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


@dataclass
class ManagedProcess:
    """One child process (and its children), stopped with SIGTERM, then SIGKILL."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        env = {**os.environ, **self.env}
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        logger.info("starting %s: %s", self.name, " ".join(self.argv))
        self.popen = subprocess.Popen(
            list(self.argv),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise BenchError(f"{self.name} not started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s did not stop in %.0fs; killing pid %d", self.name, timeout, self.popen.pid
            )
            self.popen.kill()
            self.popen.wait(5)


def gunicorn(
    name: str,
    app: str,
    port: int,
    env: Mapping[str, str],
    workers: int,
    threads: int,
    log_path: Path | None = None,
) -> ManagedProcess:
    argv = [
        str(BIN / "gunicorn"),
        app,
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--backlog", "2048",
        "--timeout", "60",
        "--graceful-timeout", "5",
        "--keep-alive", "30",
        "--log-level", "warning",
    ]  # fmt: skip
    return ManagedProcess(name, argv, env, log_path)


def python_module(
    name: str, module: str, env: Mapping[str, str], log_path: Path | None = None
) -> ManagedProcess:
    return ManagedProcess(name, [sys.executable, "-m", module], env, log_path)


def wait_until_answers(url: str, process: ManagedProcess | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if url_answers(url):
            return
        if process is not None and not process.alive():
            raise BenchError(f"{process.name} exited before answering {url}")
        time.sleep(0.2)
    raise BenchError(f"{url} did not answer within {timeout:.0f}s")


def pg_socket_dir(port: int) -> Path | None:
    """The unix socket directory of the local stack's PostgreSQL, if there is one."""
    override = os.environ.get("BENCH_PG_SOCKET_DIR")
    candidates = [Path(override)] if override else []
    candidates.append(database.socket_dir(StackConfig.from_env()))
    return next((c for c in candidates if (c / f".s.PGSQL.{port}").exists()), None)


def ensure_database(database_url: str, dbname: str) -> str:
    """The URL of ``dbname`` on the same server as ``database_url``, created if missing.

    Tries the URL's role first (needs CREATEDB), then the ``postgres`` OS user on the unix socket.
    """
    url = make_url(database_url)
    target = url.set(database=dbname)
    target_str = target.render_as_string(hide_password=False)
    if _can_connect(target_str):
        return target_str
    owner = url.username or "postgres"
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{dbname}"'))
        return target_str
    except sa.exc.SQLAlchemyError as exc:
        logger.info(
            "role %s cannot create %s (%s); trying the postgres OS user",
            owner,
            dbname,
            type(exc).__name__,
        )
    finally:
        engine.dispose()
    socket_dir = pg_socket_dir(url.port or 5432)
    if socket_dir is None:
        raise DatabaseSetupError(
            f"cannot create database {dbname}: no CREATEDB and no unix socket under .local/"
        )
    create = f'CREATE DATABASE "{dbname}" OWNER "{owner}"'
    psql = ["psql", "-h", str(socket_dir), "-p", str(url.port or 5432), "-v", "ON_ERROR_STOP=1"]
    argv = ["runuser", "-u", "postgres", "--", *psql, "-c", create]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 and "already exists" not in done.stderr:
        raise DatabaseSetupError(f"cannot create database {dbname}: {done.stderr.strip()}")
    return target_str


def _can_connect(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()
