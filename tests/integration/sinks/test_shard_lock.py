"""The shard lock against real PostgreSQL (and, for the whole sink, real Kafka): a sink
whose lock connection dropped commits no further batch, and its successor writes.

The lock connection is dropped the way a PostgreSQL restart or a network blip drops it,
from the server side: ``pg_terminate_backend`` from another connection."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sink_helpers import (
    Producer,
    committed_order,
    offsets_caught_up,
    sink_subprocess,
    statuses,
    wait_until,
)

from orderstream.core.settings import Settings
from schemas.topics import ORDERS_COMMITTED
from sinks.consumer import SinkConsumer
from sinks.exceptions import LockLost
from sinks.lock import EXIT_LOCK_LOST, ShardLock
from sinks.wiring import libpq_url, make_sink_consumer
from sinks.wiring import lock_name as sink_lock_name


def new_lock(database_url: str, name: str) -> ShardLock:
    return ShardLock(libpq_url(database_url), name)


def terminate(engine: sa.Engine, pid: int) -> None:
    """Drop a backend's connection from another one, and wait until it is gone."""
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()

    def gone() -> bool:
        with engine.connect() as conn:
            return not conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar()

    wait_until(gone, 30, f"backend {pid} to exit")


@pytest.fixture
def lock_name(namespace: str) -> str:
    return f"{namespace}sink:{uuid.uuid4().hex[:6]}"


@pytest.fixture
def locks(sink_database: str, lock_name: str) -> Iterator[list[ShardLock]]:
    """Two instances' locks of one shard, released after the test."""
    made = [new_lock(sink_database, lock_name), new_lock(sink_database, lock_name)]
    yield made
    for lock in made:
        lock.release()


def test_one_instance_holds_the_lock_and_passes_the_check(
    locks: list[ShardLock], sink_engine: sa.Engine
) -> None:
    first, second = locks
    assert first.try_acquire()
    assert not second.try_acquire()
    with sink_engine.connect() as conn, conn.begin():
        first.verify(conn)
    with pytest.raises(LockLost, match="never acquired"), sink_engine.connect() as conn:
        second.verify(conn)


def test_a_lock_whose_connection_dropped_fails_the_check_even_before_a_successor_takes_it(
    locks: list[ShardLock], sink_engine: sa.Engine
) -> None:
    first, second = locks
    assert first.try_acquire()
    assert first.backend_pid is not None
    terminate(sink_engine, first.backend_pid)
    with pytest.raises(LockLost, match="no longer holds it"), sink_engine.connect() as conn:
        with conn.begin():
            first.verify(conn)
    assert second.try_acquire()
    with pytest.raises(LockLost, match="no longer holds it"), sink_engine.connect() as conn:
        with conn.begin():
            first.verify(conn)
    with sink_engine.connect() as conn, conn.begin():
        second.verify(conn)


def test_a_checked_batch_transaction_keeps_a_successor_out_until_it_ends(
    locks: list[ShardLock], sink_engine: sa.Engine
) -> None:
    """The check's transaction lock: a batch that passed the check ends (commits) before a
    successor can take the lock and read the consumed offsets."""
    first, second = locks
    assert first.try_acquire()
    assert first.backend_pid is not None
    with sink_engine.connect() as conn:
        with conn.begin():
            first.verify(conn)
            terminate(sink_engine, first.backend_pid)
            assert not second.try_acquire(), "a successor took the lock during a batch"
        assert second.try_acquire()


def run_in_thread(runner: SinkConsumer, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            runner.run()
        except BaseException as error:  # inspected by the test
            errors.append(error)

    thread = threading.Thread(target=run, name="sink", daemon=True)
    thread.start()
    return thread


@contextmanager
def locked_sink(
    settings: Settings, lock: ShardLock, errors: list[BaseException]
) -> Iterator[threading.Thread]:
    """A sink of shard 0/1 holding ``lock`` (as ``orderstream sink`` runs it), in a thread."""
    stop = threading.Event()
    assert lock.acquire(stop, poll_s=0.1)
    runner, _sink, engine = make_sink_consumer(
        settings,
        group_id=f"{settings.topic_prefix}sink-{uuid.uuid4().hex[:6]}",
        with_read_model=False,
        stop=stop,
        lock=lock,
    )
    thread = run_in_thread(runner, errors)
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=60)
        runner.close()
        engine.dispose()
        lock.release()


def consumed(engine: sa.Engine, settings: Settings) -> dict[tuple[str, int], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT topic, partition, next_offset FROM consumed_offsets WHERE topic LIKE :p"
            ),
            {"p": settings.topic_prefix + "%"},
        )
        return {(t, p): o for t, p, o in rows}


def test_a_sink_that_lost_its_lock_commits_no_further_batch_and_its_successor_writes(
    sink_settings: Settings,
    sink_engine: sa.Engine,
    producer: Producer,
    namespace: str,
    lock_name: str,
) -> None:
    db = sink_settings.database_url
    first_errors: list[BaseException] = []
    first_lock = new_lock(db, lock_name)
    with locked_sink(sink_settings, first_lock, first_errors) as first:
        before = [f"{namespace}a{n}" for n in range(20)]
        for oid in before:
            producer.send(ORDERS_COMMITTED, oid, committed_order(oid))
        producer.flush()
        wait_until(lambda: len(statuses(sink_engine, namespace)) == 20, 60, "first orders")
        offsets = consumed(sink_engine, sink_settings)

        assert first_lock.backend_pid is not None
        terminate(sink_engine, first_lock.backend_pid)
        successor = new_lock(db, lock_name)
        wait_until(successor.try_acquire, 30, "the successor to take the lock")

        after = [f"{namespace}b{n}" for n in range(20)]
        for oid in after:
            producer.send(ORDERS_COMMITTED, oid, committed_order(oid))
        producer.flush()
        wait_until(
            lambda: not first.is_alive() or statuses(sink_engine, f"{namespace}b"),
            60,
            "the first sink to stop (or write)",
        )
        assert statuses(sink_engine, f"{namespace}b") == {}, "the first sink wrote on"
        assert consumed(sink_engine, sink_settings) == offsets
        first.join(timeout=30)
        assert not first.is_alive()
        assert len(first_errors) == 1 and isinstance(first_errors[0], LockLost), first_errors

    second_errors: list[BaseException] = []
    with locked_sink(sink_settings, successor, second_errors):
        wait_until(
            lambda: len(statuses(sink_engine, namespace)) == 40, 60, "the successor's orders"
        )
        wait_until(lambda: offsets_caught_up(sink_engine, sink_settings), 60, "offsets")
    assert second_errors == []
    assert set(statuses(sink_engine, namespace).values()) == {"shipped"}


def lock_holders(engine: sa.Engine, name: str) -> list[int]:
    """The backends holding the advisory lock ``name`` (a bigint key, in pg_locks)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objsubid = 1"
                " AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(:n, 0)"
            ),
            {"n": name},
        )
        return [r[0] for r in rows]


@pytest.mark.parametrize("batch_after", [True, False], ids=["next batch", "idle"])
def test_orderstream_sink_exits_72_when_its_lock_connection_is_terminated(
    sink_settings: Settings,
    sink_engine: sa.Engine,
    producer: Producer,
    namespace: str,
    tmp_path: Path,
    batch_after: bool,
) -> None:
    # idle: a PostgreSQL restart takes every lock; the sink must stop then, not at its
    # next batch
    log = tmp_path / "sink.log"
    proc = sink_subprocess(sink_settings, log, f"{namespace}sink-exit")
    try:
        name = sink_lock_name(sink_settings, 0, 1)
        (pid,) = wait_until(lambda: lock_holders(sink_engine, name), 60, "the sink's lock")
        producer.send(ORDERS_COMMITTED, f"{namespace}a", committed_order(f"{namespace}a"))
        producer.flush()
        wait_until(lambda: statuses(sink_engine, namespace), 60, "the first order")
        terminate(sink_engine, pid)
        if batch_after:
            producer.send(ORDERS_COMMITTED, f"{namespace}b", committed_order(f"{namespace}b"))
            producer.flush()
        assert proc.wait(timeout=60) == EXIT_LOCK_LOST, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert list(statuses(sink_engine, namespace)) == [f"{namespace}a"]
    assert "CRITICAL" in log.read_text()
    if not batch_after:
        assert "nothing uncommitted" in log.read_text()
