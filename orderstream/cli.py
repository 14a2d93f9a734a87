"""The ``orderstream`` command. Subcommands are loaded lazily from their owning modules."""

from __future__ import annotations

import importlib
import logging

import click

from orderstream import __version__

# name -> "module:click_command"; each component owns its command.
SUBCOMMANDS = {
    "stack": "orderstream.stack.cli:stack",
    "worker": "streams.worker:worker",
    "sink": "sinks.cli:sink",
    "relay": "sinks.cli:relay",
    "migrate": "sinks.cli:migrate",
    "reconcile": "orderstream.reconcile:reconcile",
    "readmodel": "orderstream.rebuild:readmodel",
    "demo": "orderstream.demo:demo",
    "bench": "bench.cli:bench",
    "schemas": "orderstream.schemas_cli:schemas",
    "jwt-keys": "orderstream.jwtkeys:jwt_keys",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="orderstream")
@click.option("--log-level", default="INFO", show_default=True)
def cli(log_level: str) -> None:
    """orderstream: a streaming order pipeline for flash sales."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if logging.getLogger().level > logging.DEBUG:
        # kafka-python logs every connection and fetch at INFO
        logging.getLogger("kafka").setLevel(logging.WARNING)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
