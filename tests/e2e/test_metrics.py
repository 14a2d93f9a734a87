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
from schemas import topics as names


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


def test_each_process_counts_the_orders_that_pass_through_it(
    api: OrderstreamClient, stocked, stack
):
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
            "dead letters": total(m["sink"], "orderstream_sink_dead_letters_total"),
            "shipped events": total(m["relay"], "orderstream_relay_events_sent_total"),
        }

    def lags(m: dict[str, dict], process: str, name: str) -> dict[tuple, float]:
        return {labels: v for (n, labels), v in m[process].items() if n == name}

    before = counts(read())
    product = stocked("metrics", 3)
    finals = [api.buy(f"m-{i}", [(product, 1)]) for i in range(3)]
    assert [f["status"] for f in finals] == ["shipped"] * 3
    assert api.wait_product(product, lambda p: p["available"] == 0)["available"] == 0
    assert api.place("m-late", [(product, 1)]).refusal is not None

    requests_topic = stack.settings.topics(names.ORDER_REQUESTS)
    deadline = time.monotonic() + 30
    while True:  # the relay publishes after the sink's commit: give it a moment
        m = read()
        after = counts(m)
        grew = {k: after[k] - before[k] for k in after}
        worker_lags = {w: lags(m, w, "orderstream_worker_partition_lag") for w in workers}
        sink_lag = lags(m, "sink", "orderstream_sink_partition_lag")
        caught_up = sum(sink_lag.values()) == 0 and all(
            v == 0
            for per_worker in worker_lags.values()
            for labels, v in per_worker.items()
            if ("topic", requests_topic) in labels
        )
        if (grew["shipped events"] >= 3 and caught_up) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # the ingress runs several processes (multiprocess mode): one sum; other stacks' tests
    # may add to every counter, so these are lower bounds
    assert grew["accepted"] >= 3 and grew["refused"] >= 1
    assert grew["decided"] >= 4  # the upsert and three order lines
    assert grew["written"] >= 3 and grew["shipped events"] >= 3
    assert grew["dead letters"] == 0
    # every process reports a lag per partition it reads, and it falls to 0 once all is done
    assert all(worker_lags.values()) and sink_lag, (worker_lags, sink_lag)
    assert caught_up, (worker_lags, sink_lag)
