"""Apache Kafka in KRaft mode (one combined broker+controller) from Maven Central's jars."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from orderstream.stack.config import StackConfig
from orderstream.stack.supervisor import Program

logger = logging.getLogger(__name__)


def _pom(cfg: StackConfig) -> Path:
    return cfg.root / "deploy" / "kafka" / "pom.xml"


def resolve_jars(cfg: StackConfig) -> None:
    """``mvn dependency:copy-dependencies`` into .local/kafka/libs, redone if the pom changed."""
    libs = cfg.local / "kafka" / "libs"
    stamp = cfg.local / "kafka" / "libs.stamp"
    digest = hashlib.sha256(_pom(cfg).read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and any(libs.glob("kafka_2.13-*.jar")):
        return
    logger.info("resolving Kafka jars with Maven into %s", libs)
    shutil.rmtree(libs, ignore_errors=True)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("mvn not found: install Maven (deploy/bootstrap.sh does it as root)")
    subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(_pom(cfg)),
            "dependency:copy-dependencies",
            f"-Dkafka.libs={libs}",
        ],
        check=True,
    )
    stamp.write_text(digest)


def _properties(cfg: StackConfig) -> str:
    data = cfg.local / "kafka" / "data"
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{cfg.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},CONTROLLER://127.0.0.1:{cfg.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data}",
            "auto.create.topics.enable=false",
            "num.partitions=8",
            "default.replication.factor=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=24",
            "log.segment.bytes=268435456",
            "",
        ]
    )


def _java(cfg: StackConfig, main: str, *args: str, heap: str = "256m") -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java not found: install a JDK 17 (deploy/bootstrap.sh does it as root)")
    return [
        java,
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={cfg.root / 'deploy' / 'kafka' / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={cfg.logs}",
        "-cp",
        f"{cfg.local / 'kafka' / 'libs'}/*",
        main,
        *args,
    ]


def new_cluster_id(draw: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: the URL-safe base64 of 16 random bytes (22 characters, unpadded),
    the text Kafka's ``Uuid.fromString`` reads back.

    ``kafka-storage format`` reads an id starting with ``-`` as an option, and Kafka's own
    ``Uuid.randomUuid()`` skips such draws; this skips every draw with a ``-`` anywhere (about
    3 in 10), as later Kafka releases do.
    """
    while True:
        text = base64.urlsafe_b64encode(draw()).decode().rstrip("=")
        if "-" not in text:
            return text


def is_cluster_id(text: str) -> bool:
    """Whether ``text`` is exactly the 22-character text of a 16-byte Kafka ``Uuid``."""
    try:
        raw = base64.urlsafe_b64decode(text + "==")
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 16 and base64.urlsafe_b64encode(raw).decode().rstrip("=") == text


def recorded_cluster_id(kafka_dir: Path) -> str:
    """The cluster id recorded in ``kafka_dir/cluster.id``, written there first if missing.

    A format redone later (the log directory lost its ``meta.properties``) then uses the id
    the data was written under; an unreadable record never formatted anything, so it is
    replaced.
    """
    record = kafka_dir / "cluster.id"
    if record.exists() and is_cluster_id(recorded := record.read_text().strip()):
        return recorded
    cluster_id = new_cluster_id()
    record.write_text(cluster_id + "\n")
    return cluster_id


def prepare(cfg: StackConfig) -> None:
    """Jars, server.properties, and KRaft storage formatted once (``meta.properties`` present
    means formatted)."""
    resolve_jars(cfg)
    props = cfg.local / "kafka" / "server.properties"
    props.write_text(_properties(cfg))
    data = cfg.local / "kafka" / "data"
    if (data / "meta.properties").exists():
        return
    cluster_id = recorded_cluster_id(cfg.local / "kafka")
    logger.info("formatting KRaft storage in %s (cluster %s)", data, cluster_id)
    format_ = ["format", f"--cluster-id={cluster_id}", "-c", str(props)]
    result = subprocess.run(
        _java(cfg, "kafka.tools.StorageTool", *format_), capture_output=True, text=True
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise RuntimeError(f"kafka-storage format failed: {output[-2000:]}")


def program(cfg: StackConfig) -> Program:
    command = _java(cfg, "kafka.Kafka", str(cfg.local / "kafka" / "server.properties"), heap="1g")
    return Program("kafka", command, cfg.root, priority=10, stopwaitsecs=60, startsecs=3)


def ping(bootstrap: str) -> None:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    # a plain TCP probe first: kafka-python's reconnect backoff would otherwise add seconds
    socket.create_connection((host, int(port)), timeout=2).close()
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="stack-ping"
    )
    try:
        admin.describe_cluster()
    finally:
        admin.close()


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int) -> list[str]:
    """Create missing topics (replication 1); returns the ones created. Idempotent."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="stack-topics")
    try:
        wanted = list(names)
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            try:
                admin.create_topics([NewTopic(n, partitions, 1) for n in missing], timeout_ms=30000)
            except TopicAlreadyExistsError:
                pass
        for desc in admin.describe_topics([n for n in wanted if n in existing]):
            count = len(desc.get("partitions", []))
            if count != partitions:
                logger.warning(
                    "topic %s has %d partitions, settings say %d (not changed: keys would move)",
                    desc.get("topic"),
                    count,
                    partitions,
                )
        return missing
    finally:
        admin.close()
