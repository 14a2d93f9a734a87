"""``orderstream stack up|down|clean|status|env|ctl``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import click

from orderstream.core.settings import Settings
from orderstream.stack import broker, database, envfile, runner
from orderstream.stack.config import StackConfig


@click.group()
def stack() -> None:
    """The local stack: Kafka, PostgreSQL, Redis and the pipeline under supervisord."""
    # kafka-python logs every refused connection while we wait; failures surface as exceptions
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


@stack.command()
@click.option(
    "--external", is_flag=True, help="Services run elsewhere; only topics, migrations, pipeline."
)
@click.option("--kafka-bootstrap", envvar="KAFKA_BOOTSTRAP")
@click.option("--database-url", envvar="DATABASE_URL")
@click.option("--redis-url", envvar="REDIS_URL")
@click.option(
    "--timeout", default=120.0, show_default=True, help="Seconds to wait for each service."
)
def up(
    external: bool,
    kafka_bootstrap: str | None,
    database_url: str | None,
    redis_url: str | None,
    timeout: float,
) -> None:
    """Start (or update) the stack; idempotent."""
    ext = None
    if external:
        if not (kafka_bootstrap and database_url and redis_url):
            raise click.UsageError(
                "--external needs --kafka-bootstrap, --database-url, --redis-url"
            )
        ext = runner.External(kafka_bootstrap, database_url, redis_url)
    cfg = StackConfig.from_env()
    try:
        runner.up(cfg, _settings(cfg), os.environ, ext, timeout_s=timeout)
    except (database.ClusterUnreachable, broker.TopologyChanged) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(runner.status(cfg))


@stack.command()
@click.option("--kafka-bootstrap", envvar="KAFKA_BOOTSTRAP", required=True)
@click.option("--database-url", envvar="DATABASE_URL", required=True)
@click.option("--redis-url", envvar="REDIS_URL", required=True)
@click.option("--timeout", default=120.0, show_default=True)
def init(kafka_bootstrap: str, database_url: str, redis_url: str, timeout: float) -> None:
    """Wait for the services, create the topics, migrate (compose's one-shot ``init``); and
    write the token signing keys ``ORDERSTREAM_JWT_KEYS_FILE`` names when it does not exist."""
    cfg = StackConfig.from_env()
    keys_file = os.environ.get("ORDERSTREAM_JWT_KEYS_FILE")
    if keys_file:
        envfile.jwt_keys_file(cfg.local, {"ORDERSTREAM_JWT_KEYS_FILE": keys_file}, {})
    values = {"KAFKA_BOOTSTRAP": kafka_bootstrap, "DATABASE_URL": database_url}
    runner.init(cfg, _settings(cfg), {**values, "REDIS_URL": redis_url}, timeout)
    click.echo("topics and migrations in place")


@stack.command()
def down() -> None:
    """Stop every process of the stack; keep the data."""
    cfg = StackConfig.from_env()
    killed = runner.down(cfg)
    if killed:
        click.echo(f"had to kill {len(killed)} left-over process(es): {sorted(killed)}", err=True)
    click.echo("stack stopped")


@stack.command()
def clean() -> None:
    """Stop the stack and delete .local (all data, with a cluster kept outside it)."""
    cfg = StackConfig.from_env()
    runner.clean(cfg)
    click.echo(f"removed {cfg.local}")


@stack.command()
def status() -> None:
    """What runs, and where."""
    click.echo(runner.status(StackConfig.from_env()))


@stack.command()
def env() -> None:
    """Print stack.env (``eval "$(orderstream stack env)"`` exports it)."""
    cfg = StackConfig.from_env()
    if not cfg.stack_env.exists():
        raise click.ClickException(f"{cfg.stack_env} missing: run `make up`")
    for line in cfg.stack_env.read_text().splitlines():
        if line and not line.startswith("#"):
            click.echo(f"export {line}")


@stack.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def ctl(args: tuple[str, ...]) -> None:
    """supervisorctl on the stack's config, e.g. ``orderstream stack ctl restart worker-0``."""
    cfg = StackConfig.from_env()
    bin_ = cfg.venv_bin / "supervisorctl"
    sys.exit(subprocess.call([str(bin_), "-c", str(cfg.supervisor_conf), *args]))


def _settings(cfg: StackConfig) -> Settings:
    """Settings for this stack: stack.env under cfg.local, overlaid by the environment."""
    from orderstream.stack import envfile

    return Settings.from_env({**envfile.recorded(cfg.stack_env), **os.environ})
