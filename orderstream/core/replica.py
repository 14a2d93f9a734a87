"""A PostgreSQL streaming replica seen from its primary: how far behind each one is, and a
wait until one has replayed everything the primary had written (reads at rest)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

LAG = sa.text(
    "SELECT application_name,"
    " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS behind_bytes,"
    " EXTRACT(EPOCH FROM replay_lag) AS replay_lag_s"
    " FROM pg_stat_replication ORDER BY application_name"
)


@dataclass(frozen=True)
class ReplicaLag:
    name: str  # the standby's application_name
    behind_bytes: float | None  # WAL the primary wrote that the replica has not replayed
    replay_lag_s: float | None  # the time it took to replay the last write (0 when idle)


def read_and_primary(read_url: str, primary_url: str) -> tuple[sa.Engine, sa.Engine]:
    """Engines for stale-tolerant scans (the replica when there is one) and for the primary;
    one engine for both when they are the same database."""
    read = sa.create_engine(read_url)
    return read, (sa.create_engine(primary_url) if primary_url != read_url else read)


def lag(primary: sa.Engine) -> list[ReplicaLag]:
    """One row per connected standby (none without a replica). Its columns are NULL for a
    role without ``pg_monitor``: None here."""
    with primary.connect() as conn:
        rows = conn.execute(LAG).all()
    return [
        ReplicaLag(
            row.application_name,
            None if row.behind_bytes is None else float(row.behind_bytes),
            None if row.replay_lag_s is None else float(row.replay_lag_s),
        )
        for row in rows
    ]


class ReplicaBehind(RuntimeError):
    """The replica had not replayed the primary's writes within the wait."""


def wait_replayed(primary: sa.Engine, replica: sa.Engine, timeout_s: float = 30.0) -> None:
    """Return once ``replica`` has replayed the WAL the primary had written when called; at
    once when ``replica`` is no standby (the primary itself, or a promoted one)."""
    with replica.connect() as conn:
        if not conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar():
            return
    with primary.connect() as conn:
        target = conn.execute(sa.text("SELECT pg_current_wal_lsn()")).scalar()
    deadline = time.monotonic() + timeout_s
    query = sa.text("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), CAST(:lsn AS pg_lsn))")
    while True:
        with replica.connect() as conn:
            ahead = conn.execute(query, {"lsn": target}).scalar()
        if ahead is not None and ahead >= 0:
            return
        if time.monotonic() > deadline:
            raise ReplicaBehind(f"the replica has not replayed {target} after {timeout_s:.0f}s")
        time.sleep(0.1)
