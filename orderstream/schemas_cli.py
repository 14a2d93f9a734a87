"""``orderstream schemas export DIR``: write the public topics' JSON Schemas."""

from __future__ import annotations

from pathlib import Path

import click

from schemas.export import export


@click.group()
def schemas() -> None:
    """The published JSON Schemas of the public topics."""


@schemas.command("export")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("schemas/json"))
def export_cmd(directory: Path) -> None:
    for path in export(directory):
        click.echo(path)
