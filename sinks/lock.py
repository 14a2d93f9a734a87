"""One active sink per shard: a PostgreSQL session advisory lock, held for the process'
lifetime on its own connection. A second instance of the same shard waits; when the
holder dies (even by SIGKILL) its connection closes and the lock passes on at once."""

from __future__ import annotations

import logging
import threading

import psycopg

logger = logging.getLogger(__name__)


class ShardLock:
    def __init__(self, conninfo: str, name: str) -> None:
        self._conninfo = conninfo
        self.name = name
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def acquire(self, stop: threading.Event, poll_s: float = 1.0) -> bool:
        """Block until the lock is held (True) or ``stop`` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._conninfo, autocommit=True)
                row = self._conn.execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.name,)
                ).fetchone()
                if row is not None and row[0]:
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

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
