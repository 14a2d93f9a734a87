"""``orderstream jwt-keys``: make or rotate the customers' token signing keys (a JWKS file).

The first key signs, every key in the file verifies. Rotation puts a new key first and keeps
the two before it, so tokens signed before the rotation stay valid until they expire; restart
the ingress (every worker reads the file at start) after writing it (docs/identity.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ingress.tokens import SigningKeys, new_key_set, rotated, write_key_file


@click.group("jwt-keys")
def jwt_keys() -> None:
    """The customers' token signing keys."""


@jwt_keys.command("new")
def new() -> None:
    """Print a new key set (one line of JSON, for a Secret or a file)."""
    click.echo(json.dumps(new_key_set()))


@jwt_keys.command("rotate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--keep", default=2, show_default=True, help="older keys kept to verify")
def rotate(path: Path, keep: int) -> None:
    """Put a new signing key first in PATH (made when missing), keeping KEEP older ones."""
    key_set = json.loads(path.read_text()) if path.exists() else {"keys": []}
    result = rotated(key_set, keep)
    SigningKeys(result)  # refuse to write a set the ingress would not load
    write_key_file(path, result)
    click.echo(f"{path}: signing with {result['keys'][0]['kid']}, {len(result['keys'])} keys")
