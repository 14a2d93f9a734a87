"""Pruning old line records: what is deleted, and why a replay never decides again."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from hypothesis import given, settings
from streams_fakes import NOW, DictState, release, request, upsert
from test_streams_ledger import CMD, REQ, inputs

from schemas.orders import OrderLineRequested
from streams import ledger
from streams.pruning import LinePruner
from streams.records import (
    LINE_PREFIX,
    LineState,
    ProductState,
    PruneMark,
    encode,
    line_key,
    product_key,
    prune_mark_key,
)
from streams.stock import StockCache

MARK = prune_mark_key(0)
LATER = NOW + timedelta(days=1)


def apply(state: DictState, ops: list[tuple[str, int, object]]) -> list[LineState | None]:
    """Like test_streams_ledger.run, with the partition's prune mark; the lines returned."""
    lines: list[LineState | None] = []
    for topic, offset, message in ops:
        if topic == REQ:
            assert isinstance(message, OrderLineRequested)
            lines.append(ledger.on_request(state, message, offset, NOW, MARK))
        else:
            ledger.on_command(state, message, offset)  # type: ignore[arg-type]
    return lines


def line_keys(state: DictState) -> list[bytes]:
    return [k for k, v in state.data.items() if isinstance(v, LineState)]


@settings(max_examples=200, deadline=None)
@given(inputs())
def test_replaying_everything_after_a_prune_decides_nothing_again(
    ops: list[tuple[str, int, object]],
) -> None:
    state = DictState()
    apply(state, ops)
    lines = len(line_keys(state))
    processed = max((offset for topic, offset, _ in ops if topic == REQ), default=-1)

    pruned = ledger.prune_lines(state, line_keys(state), LATER, MARK, processed)

    assert line_keys(state) == [] and pruned == lines
    if lines:
        assert state.get(MARK) == PruneMark(request_offset=processed)
    snapshot = dict(state.data)
    assert all(line is None for line in apply(state, ops))  # every request: pruned, skipped
    assert state.data == snapshot  # no reservation, release or command applied twice


def test_lines_decided_after_the_cutoff_stay_and_new_requests_are_decided() -> None:
    state = DictState()
    apply(state, [(CMD, 0, upsert(stock=5)), (REQ, 0, request("old")), (REQ, 1, request("a"))])
    young = ledger.on_request(state, request("young"), 2, LATER)
    assert young is not None

    assert ledger.prune_lines(state, line_keys(state), NOW + timedelta(hours=1), MARK, 2) == 2

    assert line_keys(state) == [line_key("young", 0)]
    assert state.get(MARK) == PruneMark(request_offset=2)
    fresh = ledger.on_request(state, request("fresh"), 3, LATER, MARK)
    assert fresh is not None and fresh.status == "held"
    product = state.get(product_key("SKU-1"))
    assert isinstance(product, ProductState) and product.available == 1  # 5 - old, a, young, fresh


def test_a_release_of_a_pruned_line_releases_nothing() -> None:
    state = DictState()
    apply(state, [(CMD, 0, upsert(stock=2)), (REQ, 0, request("o"))])
    ledger.prune_lines(state, line_keys(state), LATER, MARK, 0)

    assert ledger.on_command(state, release("o", "SKU-1", 1), 1) is None
    product = state.get(product_key("SKU-1"))
    assert isinstance(product, ProductState) and product.available == 1


class RecordingTable:
    def __init__(self) -> None:
        self.puts: list[tuple[bytes, bytes | None]] = []

    def get(self, key: bytes) -> bytes | None:
        return None

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.puts.append((key, value))


def test_the_mark_reaches_the_changelog_before_the_deletions_it_covers() -> None:
    table = RecordingTable()
    cache = StockCache(table)  # type: ignore[arg-type]
    cache.set(
        product_key("SKU-1"), ProductState(product_id="SKU-1", name="n", price=1, available=0)
    )  # type: ignore[arg-type]
    cache.delete(line_key("o", 0))
    cache.set(MARK, PruneMark(request_offset=7))
    new_line = ledger.on_request(DictState(), request("n"), 7, NOW)
    assert new_line is not None
    cache.set(line_key("n", 0), new_line)

    cache.write(0)

    assert [key for key, _ in table.puts] == [
        line_key("n", 0),  # the lines the mark covers come first
        MARK,
        line_key("o", 0),  # then the deletions it explains
        product_key("SKU-1"),
    ]
    assert table.puts[2][1] is None  # a tombstone


def stored(lines: dict[bytes, LineState]):  # type: ignore[no-untyped-def]
    """A scan over a sorted mapping, as faustutil.scan_partition reads a partition."""
    calls = []

    def scan(partition: int, start: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        calls.append(start)
        keys = sorted(k for k in lines if k >= start and k.startswith(LINE_PREFIX))[:limit]
        return [(k, encode(lines[k])) for k in keys]

    return scan, calls


def a_line(order: str, product: str = "SKU-1", at=NOW) -> LineState:  # type: ignore[no-untyped-def]
    line = ledger.on_request(DictState(), request(order, product), 0, at)
    assert line is not None
    return line


def test_the_pruner_walks_a_partition_in_steps_then_rests_between_passes() -> None:
    lines = {line_key(f"o{i}", 0): a_line(f"o{i}") for i in range(5)}
    lines[line_key("young", 0)] = a_line("young", at=LATER)
    scan, calls = stored(lines)
    clock = SimpleNamespace(now=0.0)
    pruner = LinePruner(
        scan,
        keys_per_batch=3,
        pass_every_s=60,
        clock=lambda: clock.now,
    )
    cutoff = NOW + timedelta(hours=1)

    found = [pruner.candidates(0, cutoff) for _ in range(3)]

    # 6 keys in steps of 3 (the last step finds none): the young line is left out
    assert sorted(k for step in found for k in step) == sorted(
        line_key(f"o{i}", 0) for i in range(5)
    )
    assert len(calls) == 3 and calls[0] == LINE_PREFIX
    assert pruner.candidates(0, cutoff) == []  # resting
    clock.now = 61
    assert pruner.candidates(0, cutoff) != []  # a new pass
