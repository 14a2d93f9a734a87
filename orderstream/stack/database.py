"""PostgreSQL from the Debian server binaries: own data dir, own port and socket.

postgres refuses to run as root, so when we are root the cluster belongs to the ``postgres``
OS user (its directories are chowned to it); otherwise it runs as the current user. That user
must reach the cluster's directory: it is ``.local/pg`` when it can, else a directory of
its own under ``OUTSIDE_BASE`` that ``.local/pg`` links to (a clone in root's home, or in
a ``mktemp -d`` directory, is closed to it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from orderstream.stack.config import StackConfig
from orderstream.stack.supervisor import Program

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
REPLICA = "postgres-replica"  # the streaming replica's program
# under the home of Debian's postgres user, which that user can always reach
OUTSIDE_BASE = Path("/var/lib/postgresql/orderstream")


class ClusterUnreachable(RuntimeError):
    """The cluster is in a tree its OS user cannot reach; the message says what to do."""


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


def reaches(user: str, path: Path) -> bool:
    """Whether ``user`` can pass through ``path`` and every directory above it (asked as
    that user, so modes and ACLs both count)."""
    probe = ["runuser", "-u", user, "--", "test", "-x", str(path)]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def outside_home(local: Path, base: Path = OUTSIDE_BASE) -> Path:
    """The directory of ``local``'s cluster when it cannot be in ``local``: one per stack
    directory, named by the hash of its path."""
    return base / hashlib.sha256(str(local).encode()).hexdigest()[:16]


def cluster_home(local: Path) -> Path:
    """The cluster's directory (``data``, ``run``): ``local/pg``, or where that link points."""
    link = local / "pg"
    return link.resolve() if link.is_symlink() else link


def place(
    local: Path,
    user: str | None,
    can_reach: Callable[[str, Path], bool] = reaches,
    base: Path = OUTSIDE_BASE,
) -> Path:
    """The cluster's directory, chosen when the stack directory holds no cluster yet, and kept.

    In the tree when ``user`` (None: ourselves) reaches ``local``; else under ``base``, with
    ``local/pg`` linking to it, so that ``make clean`` finds it. A directory already there
    under that name (left by a tree deleted without ``make clean``, or still used by one
    moved away) is never reused nor removed: the next free ``<hash>-N`` is taken.
    """
    link = local / "pg"
    if link.is_symlink():
        return cluster_home(local)
    if (link / "data" / "PG_VERSION").exists():
        if user is not None and not can_reach(user, local):
            raise ClusterUnreachable(
                f"the {user} OS user cannot reach {local}, where this stack's PostgreSQL "
                "cluster is: open the way (chmod o+x on each directory above it), or "
                f"`make clean` and `make up` to make a new cluster under {base}"
            )
        return link
    if user is None or can_reach(user, local):
        return link
    shutil.rmtree(link, ignore_errors=True)  # what a failed initdb left: no cluster
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    first = home = outside_home(local, base)
    taken = 1
    while home.exists():
        taken += 1
        home = first.with_name(f"{first.name}-{taken}")
    if home != first:
        logger.warning("%s exists (not ours, left alone): the cluster goes in %s", first, home)
    home.mkdir()
    link.symlink_to(home)
    logger.info("the %s OS user cannot reach %s: the cluster goes in %s", user, local, home)
    return home


def remove(local: Path, base: Path = OUTSIDE_BASE) -> None:
    """Delete the cluster's directory when ``local/pg`` links to one under ``base`` (the
    rest goes with ``local``)."""
    link = local / "pg"
    if link.is_symlink() and (home := link.resolve()).parent == base.resolve():
        shutil.rmtree(home, ignore_errors=True)


def _dirs(cfg: StackConfig) -> tuple[Path, Path]:
    home = cluster_home(cfg.local)
    return home / "data", home / "run"


def prepare(cfg: StackConfig) -> None:
    """The cluster's directories, owned by its OS user, and ``initdb`` once."""
    user = os_user()
    home = place(cfg.local, user)
    data, sock = home / "data", home / "run"
    sock.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (home, sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    if (data / "PG_VERSION").exists():
        return
    logger.info("initdb %s", data)
    data.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(data, user, user)
    data.chmod(0o700)
    prefix = ["runuser", "-u", user, "--"] if user else []
    result = subprocess.run(
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
        cwd=home,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"initdb {data} failed: {(result.stderr or result.stdout).strip()}")


def _server(
    cfg: StackConfig, name: str, data: Path, port: int, sock: Path, *settings: str, **options: Any
) -> Program:
    """A supervised ``postgres`` on ``data``, 127.0.0.1:``port`` and a socket in ``sock``,
    with the settings both servers share and ``settings`` (``name=value``) on top."""
    shared = ("listen_addresses=127.0.0.1", "max_connections=300", "log_min_messages=warning")
    command = [str(bin_dir() / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock)]
    for setting in (*shared, *settings):
        command += ["-c", setting]
    return Program(
        name,
        command,
        cluster_home(cfg.local),
        user=os_user(),
        stopsignal="INT",
        stopwaitsecs=60,
        startsecs=2,
        **options,
    )


def program(cfg: StackConfig) -> Program:
    data, sock = _dirs(cfg)
    return _server(
        cfg,
        "postgres",
        data,
        cfg.pg_port,
        sock,
        "shared_buffers=256MB",
        # WAL kept for a replica that was down a while (it catches up from it, no slot)
        "wal_keep_size=512MB",
        priority=10,
    )


def replica_dirs(cfg: StackConfig) -> tuple[Path, Path]:
    """The replica's data directory and socket directory, beside the primary's."""
    home = cluster_home(cfg.local) / "replica"
    return home / "data", home / "run"


def prepare_replica(cfg: StackConfig) -> None:
    """A streaming replica made once from the running primary with ``pg_basebackup -R``
    (which writes ``standby.signal`` and the primary's address): a hot standby that follows
    the primary over its Unix socket."""
    data, sock = replica_dirs(cfg)
    if (data / "PG_VERSION").exists():
        return
    user = os_user()
    home = data.parent
    shutil.rmtree(data, ignore_errors=True)  # what a failed base backup left
    sock.mkdir(parents=True, exist_ok=True)
    if user is not None:
        for path in (home, sock):
            shutil.chown(path, user, user)
    logger.info("pg_basebackup into %s", data)
    prefix = ["runuser", "-u", user, "--"] if user else []
    _, primary_sock = _dirs(cfg)
    command = [
        *prefix,
        str(bin_dir() / "pg_basebackup"),
        "-h",
        str(primary_sock),
        "-p",
        str(cfg.pg_port),
        "-U",
        SUPERUSER,
        "-D",
        str(data),
        "-R",
        "-X",
        "stream",
        "-c",
        "fast",
    ]
    result = subprocess.run(command, cwd=home, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise RuntimeError(f"pg_basebackup failed: {(result.stderr or result.stdout).strip()}")


def replica_program(cfg: StackConfig) -> Program:
    """The hot standby; started by ``up`` once its base backup exists. Its
    ``max_connections`` equals the primary's, as a hot standby needs."""
    data, sock = replica_dirs(cfg)
    return _server(
        cfg,
        REPLICA,
        data,
        cfg.pg_replica_port,
        sock,
        "shared_buffers=128MB",
        "hot_standby=on",
        # the primary keeps rows a replica query still reads: long scans are not cancelled
        "hot_standby_feedback=on",
        autostart=False,
        priority=11,
    )


def socket_dir(cfg: StackConfig) -> Path:
    """The directory of the cluster's Unix socket (in the tree, or where ``place`` put it)."""
    return _dirs(cfg)[1]


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
    """Role and database ``orderstream`` (password ``orderstream``), created once; the role
    may read replication statistics."""
    with superuser(cfg) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'orderstream'").fetchone() is None:
            conn.execute("CREATE ROLE orderstream LOGIN PASSWORD 'orderstream'")
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = 'orderstream'").fetchone()
            is None
        ):
            conn.execute("CREATE DATABASE orderstream OWNER orderstream")
        # replica lag (pg_stat_replication) is shown to monitoring roles only
        conn.execute("GRANT pg_monitor TO orderstream")


def ping(database_url: str) -> None:
    with psycopg.connect(database_url.replace("+psycopg", ""), connect_timeout=3) as conn:
        conn.execute("SELECT 1")


def ping_superuser(cfg: StackConfig) -> None:
    with superuser(cfg, connect_timeout=3) as conn:
        conn.execute("SELECT 1")
