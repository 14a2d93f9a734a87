"""A worker's ``/livez`` and ``/readyz``, on its Faust web server next to ``/metrics``
(the same answers as the sink's and the relay's, ``orderstream.core.health``).

Live: the page runs on the event loop the agents run on, so an answer means the loop
turns; the app must not be stopping. (An agent that stops processing while the loop turns
is the stall watchdog's case, ``streams.watchdog``.) Ready: the worker has joined the
group and no rebalance is in progress, its tables are restored (no recovery in progress),
and no assigned source partition is more than ``max_lag`` records past its committed
offset. A worker holding no partition (more workers than partitions) is ready: it stands
by.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orderstream.core import health
from streams.faustinternals import committed_offsets
from streams.metrics import lag_of


def serve(app: Any, sources: Iterable[str], max_lag: int) -> None:
    source_topics = frozenset(sources)

    def loop() -> tuple[bool, str]:
        return (False, "stopping") if app.should_stop else (True, "the event loop answers")

    def group() -> tuple[bool, str]:
        if not app.consumer_generation_id:
            return False, "has not joined the consumer group yet"
        if app.rebalancing:
            return False, "rebalancing"
        assigned = [tp for tp in app.consumer.assignment() if tp.topic in source_topics]
        return True, f"generation {app.consumer_generation_id}, {len(assigned)} partitions"

    def tables() -> tuple[bool, str]:
        return (False, "restoring") if app.in_recovery else (True, "restored")

    def caught_up() -> tuple[bool, str]:
        partitions = [tp for tp in app.consumer.assignment() if tp.topic in source_topics]
        committed = dict(committed_offsets(app))
        lag = lag_of(partitions, app.consumer.highwater, committed)
        return health.lag_within(lambda: lag, max_lag)()

    probes = {
        "/livez": {"loop": loop},
        "/readyz": {"group": group, "tables": tables, "lag": caught_up},
    }
    for path, checks in probes.items():
        _page(app, path, checks)


def _page(app: Any, path: str, checks: dict[str, health.Check]) -> None:
    async def probe(web: Any, request: Any) -> Any:
        code, body = health.answer(checks)
        return web.json(body, status=code)

    app.page(path)(probe)
