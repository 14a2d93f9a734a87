"""The ``orderstream`` command. Subcommands are loaded lazily from their owning modules."""

from __future__ import annotations

import importlib
import os

import click

from orderstream import __version__
from orderstream.core import logs
from orderstream.core.settings import Settings

# name -> "module:click_command"; each component owns its command.
SUBCOMMANDS = {
    "stack": "orderstream.stack.cli:stack",
    "worker": "streams.worker:worker",
    "sink": "sinks.cli:sink",
    "relay": "sinks.cli:relay",
    "migrate": "sinks.cli:migrate",
    "reconcile": "orderstream.reconcile:reconcile",
    "deadletters": "orderstream.deadletters:deadletters",
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
@click.option("--log-level", default=None, help="the root level (default: ORDERSTREAM_LOG_LEVEL)")
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default=None,
    help="JSON lines or text (default: ORDERSTREAM_LOG_FORMAT, else text)",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str | None, log_format: str | None) -> None:
    """orderstream: a streaming order pipeline for flash sales."""
    # in the environment too: a command that reads its settings again (the worker hands
    # them to Faust) and the processes it starts log the same way
    for name, value in (("LOG_LEVEL", log_level), ("LOG_FORMAT", log_format)):
        if value is not None:
            os.environ[f"ORDERSTREAM_{name}"] = value
    logs.configure(Settings.from_env(), ctx.invoked_subcommand or "orderstream")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
