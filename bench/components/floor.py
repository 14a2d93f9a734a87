"""``python -m bench.components.floor``: the cheapest Faust worker, the floor that
``bench.components.streams`` measures.

One app with the workers' options (``streams.app.new_app``: the same consumer, producer
and buffers) and one agent that forwards every record of ``orders.requests`` to
``<prefix>floor.out`` the way the stock agent sends its output (``take_batches`` and an
``Outbox``), with no tables, no decoding and no read model. Its rate is what any Faust
agent of this shape can reach here, so it bounds what the stock agent can.
"""

from __future__ import annotations

from pathlib import Path

import click
import faust
import mode.loop

from orderstream.core.settings import Settings
from schemas import topics as names
from streams.agents import BATCH_MAX, BATCH_WITHIN_S
from streams.app import StreamApp, new_app
from streams.faustinternals import take_batches
from streams.faustutil import Outbox


def floor_output(settings: Settings) -> str:
    return f"{settings.topic_prefix}floor.out"


def create_floor_app(settings: Settings, web_port: int) -> StreamApp:
    app = new_app(settings, web_port=web_port, store="memory://")
    source = app.topic(settings.topics(names.ORDER_REQUESTS), partitions=settings.partitions)
    output, outbox = floor_output(settings), Outbox(app)

    async def forward(stream: faust.StreamT) -> None:
        async for events in take_batches(stream, BATCH_MAX, BATCH_WITHIN_S):
            for event in events:
                message = event.message
                outbox.add(output, message.key, message.value, message.partition)
            await outbox.flush()

    app.agent(source, name="forward", concurrency=1)(forward)
    return app


@click.command()
@click.option("--web-port", type=int, required=True)
def main(web_port: int) -> None:
    """Run the floor worker (topics must exist)."""
    mode.loop.use("uvloop")  # as the workers
    settings = Settings.from_env()
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # Faust creates only <N>/
    app = create_floor_app(settings, web_port)
    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None  # as the workers (streams.worker: why)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
