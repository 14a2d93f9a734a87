"""Scenario generation and the parsing of Kafka's perf tool output."""

from __future__ import annotations

import itertools

import pytest

from bench.exceptions import BenchError
from bench.limits import parse_consumer, parse_producer
from bench.scenarios import build


@pytest.mark.parametrize("name", ["hot_product", "catalog", "multi_line"])
def test_orders_only_name_the_scenarios_products_and_are_reproducible(name: str) -> None:
    scenario = build(name, "r1", scale=0.1)
    first = list(itertools.islice(scenario.order_lines(), 200))
    again = list(itertools.islice(build(name, "r1", scale=0.1).order_lines(), 200))
    assert first == again
    for lines in first:
        assert scenario.min_lines <= len(lines) <= scenario.max_lines
        assert len({pid for pid, _ in lines}) == len(lines)
        assert all(pid in scenario.stock and 1 <= q <= scenario.max_quantity for pid, q in lines)


def test_scenario_shapes() -> None:
    hot = build("hot_product", "r", 1.0)
    assert len(hot.stock) == 1 and sum(hot.stock.values()) < hot.demand_units_estimate
    assert len(build("catalog", "r", 1.0).stock) == 10_000
    multi = build("multi_line", "r", 1.0)
    assert (multi.min_lines, multi.max_lines) == (2, 5)
    assert build("hot_product", "a").stock.keys().isdisjoint(build("hot_product", "b").stock.keys())


def test_parse_kafka_perf_output() -> None:
    produced = (
        "123 records sent, 24.6 records/sec (0.00 MB/sec)\n"
        "300000 records sent, 98231.4 records/sec (18.74 MB/sec), "
        "120.3 ms avg latency, 450.0 ms max latency"
    )
    assert parse_producer(produced) == pytest.approx(98231.4)
    consumed = (
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
        "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
        "2025-01-01 00:00:00:000, 2025-01-01 00:00:05:000, 57.2, 11.4, 300000, 60000.0, "
        "3000, 2000, 28.6, 150000.0\n"
    )
    assert parse_consumer(consumed) == pytest.approx(150000.0)
    with pytest.raises(BenchError):
        parse_producer("nothing")
    with pytest.raises(BenchError):
        parse_consumer("nothing")
