"""Operators see the pipeline work: every process's /metrics moves when orders flow.

Through HTTP only: the ingress, each Faust worker (its web port), the sink and the relay
(their metrics ports, from the stack's configuration)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from orderstream.client import OrderstreamClient
from orderstream.stack.config import StackConfig


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (n, have), value in samples.items()
        if n == name and set(labels.items()) <= set(have)
    )


def everything(cfg: StackConfig) -> Callable[[], dict[str, dict]]:
    urls = {
        "ingress": f"http://127.0.0.1:{cfg.ingress_port}/metrics",
        "sink": f"http://127.0.0.1:{cfg.sink_metrics_port}/metrics",
        "relay": f"http://127.0.0.1:{cfg.relay_metrics_port}/metrics",
        **{
            f"worker-{n}": f"http://127.0.0.1:{cfg.worker_web_port + n}/metrics"
            for n in range(cfg.workers)
        },
    }
    return lambda: {name: scrape(url) for name, url in urls.items()}


def test_each_process_counts_the_orders_that_pass_through_it(api: OrderstreamClient, stocked):
    cfg = StackConfig.from_env()
    read = everything(cfg)
    workers = [f"worker-{n}" for n in range(cfg.workers)]

    def counts(m: dict[str, dict]) -> dict[str, float]:
        return {
            "accepted": total(m["ingress"], "ingress_orders_accepted_total"),
            "refused": total(m["ingress"], "ingress_orders_refused_total", reason="out_of_stock"),
            "decided": sum(
                total(m[w], "orderstream_worker_events_total", agent="reserve_stock")
                for w in workers
            ),
            "written": total(m["sink"], "orderstream_sink_records_written_total"),
            "shipped events": total(m["relay"], "orderstream_relay_events_sent_total"),
        }

    before = counts(read())
    product = stocked("metrics", 3)
    finals = [api.buy(f"m-{i}", [(product, 1)]) for i in range(3)]
    assert [f["status"] for f in finals] == ["shipped"] * 3
    assert api.wait_product(product, lambda p: p["available"] == 0)["available"] == 0
    assert api.place("m-late", [(product, 1)]).refusal is not None

    deadline = time.monotonic() + 30
    while True:  # the relay publishes after the sink's commit: give it a moment
        m = read()
        after = counts(m)
        grew = {k: after[k] - before[k] for k in after}
        if grew["shipped events"] >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # the ingress runs several processes (multiprocess mode): one sum; other stacks' tests
    # may add to every counter, so these are lower bounds
    assert grew["accepted"] >= 3 and grew["refused"] >= 1
    assert grew["decided"] >= 4  # the upsert and three order lines
    assert grew["written"] >= 3 and grew["shipped events"] >= 3
    for w in workers:
        lag = [v for (n, _), v in m[w].items() if n == "orderstream_worker_partition_lag"]
        assert lag and all(v >= 0 for v in lag), (w, lag)
    assert total(m["sink"], "orderstream_sink_dead_letters_total") == 0
