"""Redis from Debian's ``redis-server``: own port, append-only file under .local/redis."""

from __future__ import annotations

import shutil

import redis

from orderstream.stack.config import StackConfig
from orderstream.stack.supervisor import Program


def prepare(cfg: StackConfig) -> None:
    (cfg.local / "redis").mkdir(parents=True, exist_ok=True)


def program(cfg: StackConfig) -> Program:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    command = [
        server,
        "--bind",
        "127.0.0.1",
        "--port",
        str(cfg.redis_port),
        "--dir",
        str(cfg.local / "redis"),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
        "--maxclients",
        "10000",
    ]
    return Program("redis", command, cfg.local / "redis", priority=10, startsecs=1)


def ping(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=3, socket_connect_timeout=3)
    try:
        if not client.ping():
            raise RuntimeError("redis PING failed")
    finally:
        client.close()
