"""``.local/stack.env``: how tools, tests and people reach the running stack."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from orderstream.core.settings import read_env_file

KEYS = (
    "INGRESS_URL",
    "KAFKA_BOOTSTRAP",
    "DATABASE_URL",
    "DATABASE_READ_URL",
    "REDIS_URL",
    "STOREFRONT_KEY",
    "ADMIN_KEY",
    "ORDERSTREAM_JWT_KEYS_FILE",
    "ORDERSTREAM_PARTITIONS",
    "ORDERSTREAM_REPLICATION_FACTOR",
    "ORDERSTREAM_MIN_INSYNC_REPLICAS",
    "ORDERSTREAM_STANDBY_REPLICAS",
    "ORDERSTREAM_DATA_DIR",
    "ORDERSTREAM_BROKERS",
    "ORDERSTREAM_PG_REPLICA",
    "ORDERSTREAM_WORKERS",
    "ORDERSTREAM_PIPELINE_NICE",
)


def recorded(path: Path) -> dict[str, str]:
    return read_env_file(path) if path.exists() else {}


def secret(name: str, environ: Mapping[str, str], previous: Mapping[str, str]) -> str:
    """From the environment, else the one already recorded (stable across runs), else new."""
    return environ.get(name) or previous.get(name) or secrets.token_urlsafe(24)


def jwt_keys_file(local: Path, environ: Mapping[str, str], previous: Mapping[str, str]) -> str:
    """The customers' token signing keys (a JWKS of private keys, ``ingress.tokens``): the
    file the environment or the last run named, else ``.local/jwt-keys.json``, made with one
    new key when it does not exist. Every ingress worker reads this one file."""
    from ingress.tokens import new_key_set, write_key_file

    name = "ORDERSTREAM_JWT_KEYS_FILE"
    path = Path(environ.get(name) or previous.get(name) or local / "jwt-keys.json")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_key_file(path, new_key_set())
    return str(path)


def write(path: Path, values: Mapping[str, str]) -> None:
    body = "".join(f"{k}={values[k]}\n" for k in KEYS if k in values)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "# written by `orderstream stack up`; source it or use Settings.from_env()\n" + body
    )
    tmp.chmod(0o600)
    tmp.replace(path)
