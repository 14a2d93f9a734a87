"""One active sink per shard: a PostgreSQL advisory lock, checked in every batch.

The lock is a session advisory lock on ``hashtextextended(name, 0)``, taken on a
connection of its own and held for the process' lifetime. A second instance of the same
shard waits; when the holder dies (even by SIGKILL) its connection closes and the lock
passes on at once.

Taking it once is not enough: the lock connection can drop while the process lives on
(a PostgreSQL restart, a network blip, ``pg_terminate_backend``). The lock is then free,
a second instance takes it, and two sinks would write the same shard. So every batch
transaction proves ownership first (``ShardLock.verify``), in the transaction itself, in
two steps, in this order:

1. It takes ``pg_try_advisory_xact_lock_shared`` on the same key, held until the batch
   commits or rolls back: from now on no instance can take the lock, even if this
   process' lock connection drops meanwhile.
2. It checks in ``pg_locks`` that this process' own lock connection (its backend pid
   and start time, so a reused pid does not count) still holds the lock. Then it has held
   it since ``acquire``, so no other instance took it before step 1 either.

So a batch that passed the check has ended before a successor starts, and the successor
reads the consumed offsets it wrote; and a sink whose lock connection is gone stops at
its next batch, whether or not a successor has turned up yet.

For that transaction lock not to collide with this process' own lock, the lock
connection holds the lock in shared mode: ``acquire`` takes it exclusively (which fails
while anyone holds it, shared or exclusive), adds the shared lock and drops the
exclusive one. Every instance takes it the exclusive way, so no two hold it at once.

A failed check raises ``LockLost``: the batch rolls back and the sink stops (exit status
``EXIT_LOCK_LOST``); the supervisor starts it again, and it waits on the lock like any
second instance. A PostgreSQL restart therefore restarts the sink too.

Re-taking the lock on a new connection would not do: another instance may have written
in between, and this one would carry on from what it had read before. Starting afresh,
from the offsets in PostgreSQL, is safe.

Checking within the transaction costs two statements per batch (a look at ``pg_locks``
and ``pg_stat_activity``), not one per record.
"""

from __future__ import annotations

import datetime
import logging
import threading
from dataclasses import dataclass

import psycopg
from sqlalchemy import Connection, text

from sinks.exceptions import LockLost

logger = logging.getLogger(__name__)

#: The sink's exit status when it stopped because it no longer held its shard lock.
EXIT_LOCK_LOST = 72

_FENCE = text("SELECT pg_try_advisory_xact_lock_shared(:key)")
# A bigint advisory key shows in pg_locks as classid (high 32 bits), objid (low 32 bits)
# and objsubid 1.
_HELD = text(
    """
    SELECT EXISTS (
        SELECT 1
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND ((l.classid::bigint << 32) | l.objid::bigint) = :key
          AND l.pid = :pid AND a.backend_start = :started
    )
    """
)


@dataclass(frozen=True)
class _Holder:
    """The lock connection's backend, as PostgreSQL knows it."""

    key: int
    pid: int
    started: datetime.datetime


class ShardLock:
    def __init__(self, conninfo: str, name: str) -> None:
        self._conninfo = conninfo
        self.name = name
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._holder: _Holder | None = None

    @property
    def backend_pid(self) -> int | None:
        """The pid of the backend holding the lock (None until acquired)."""
        return None if self._holder is None else self._holder.pid

    def acquire(self, stop: threading.Event, poll_s: float = 1.0) -> bool:
        """Block until the lock is held (True) or ``stop`` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if self.try_acquire():
                    logger.info("holding sink lock %r", self.name)
                    return True
                if not announced:
                    logger.info("sink lock %r is held by another instance; waiting", self.name)
                    announced = True
            except psycopg.Error as error:
                logger.warning("cannot take sink lock: %s", error)
                self.release()
            stop.wait(poll_s)
        return False

    def try_acquire(self) -> bool:
        """Take the lock if no one holds it (True), else False; does not wait."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
        row = self._conn.execute(
            "SELECT hashtextextended(%s, 0), pg_backend_pid(), backend_start"
            " FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            (self.name,),
        ).fetchone()
        assert row is not None  # a session always sees itself
        key, pid, started = row
        assert isinstance(key, int) and isinstance(pid, int)
        assert isinstance(started, datetime.datetime)
        won = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if won is None or not won[0]:
            return False
        # hold it shared from now on, so this process' batches can take it shared too
        self._conn.execute("SELECT pg_advisory_lock_shared(%s)", (key,))
        self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        self._holder = _Holder(key, pid, started)
        return True

    def verify(self, connection: Connection) -> None:
        """Raise ``LockLost`` unless this process still owns the shard; call it first in
        every transaction that writes for the shard (module docstring)."""
        if self._holder is None:
            raise LockLost(f"sink lock {self.name!r} was never acquired")
        holder = self._holder
        if not connection.execute(_FENCE, {"key": holder.key}).scalar_one():
            raise LockLost(f"sink lock {self.name!r} is taken by another instance")
        held = connection.execute(
            _HELD, {"key": holder.key, "pid": holder.pid, "started": holder.started}
        ).scalar_one()
        if not held:
            raise LockLost(
                f"sink lock {self.name!r} lost: its connection (backend {holder.pid})"
                " no longer holds it"
            )

    def release(self) -> None:
        self._holder = None
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
