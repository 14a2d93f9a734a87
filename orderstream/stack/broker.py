"""Apache Kafka in KRaft mode from Maven Central's jars: one node, or a cluster of combined
broker+controller nodes on consecutive loopback ports."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownBrokerIdError

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


# A cluster fences a node that has not heartbeated for this long and moves its partitions'
# leadership: writes to them wait that long after a crash (Kafka's default, 9 s, kept for a
# single node, where fencing helps nothing: there is no other node to lead)
CLUSTER_SESSION_TIMEOUT_MS = 3000
CLUSTER_HEARTBEAT_MS = 500


def node_dir(cfg: StackConfig, node: int) -> Path:
    """A node's ``server.properties`` and ``data``: ``.local/kafka`` for a single node,
    ``.local/kafka/node-N`` in a cluster."""
    base = cfg.local / "kafka"
    return base if cfg.brokers == 1 else base / f"node-{node}"


def program_name(cfg: StackConfig, node: int) -> str:
    """``kafka`` for a single node, ``kafka-N`` in a cluster."""
    return "kafka" if cfg.brokers == 1 else f"kafka-{node}"


def program_names(cfg: StackConfig) -> list[str]:
    return [program_name(cfg, n) for n in cfg.broker_nodes]


def properties(cfg: StackConfig, node: int) -> str:
    """``server.properties`` of ``node``: a combined broker and KRaft controller, every node a
    voter (docs/decisions/0022-one-broker-by-default.md says why combined). Replication comes
    from the node count (``StackConfig.replication_factor``, ``min_insync_replicas``), for
    the topics the brokers create themselves as for ours; unclean leader election stays off,
    so a lagging replica never becomes leader and drops acknowledged writes."""
    rf, min_isr = cfg.replication_factor, cfg.min_insync_replicas
    voters = ",".join(f"{n}@127.0.0.1:{cfg.controller_port_of(n)}" for n in cfg.broker_nodes)
    port, controller = cfg.broker_port(node), cfg.controller_port_of(node)
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={node_dir(cfg, node) / 'data'}",
            "auto.create.topics.enable=false",
            "num.partitions=8",
            f"default.replication.factor={rf}",
            f"min.insync.replicas={min_isr}",
            "unclean.leader.election.enable=false",
            f"offsets.topic.replication.factor={rf}",
            "offsets.topic.num.partitions=10",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            *(
                [
                    f"broker.session.timeout.ms={CLUSTER_SESSION_TIMEOUT_MS}",
                    f"broker.heartbeat.interval.ms={CLUSTER_HEARTBEAT_MS}",
                ]
                if cfg.brokers > 1
                else []
            ),
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


class TopologyChanged(RuntimeError):
    """The Kafka data was formatted for another node count: KRaft's voters are fixed at
    format time, so moving between topologies starts from empty data (``make clean``)."""


def prepare(cfg: StackConfig) -> None:
    """Jars, each node's server.properties, and its KRaft storage formatted once
    (``meta.properties`` present means formatted), all under one cluster id."""
    resolve_jars(cfg)
    kafka_dir = cfg.local / "kafka"
    kafka_dir.mkdir(parents=True, exist_ok=True)
    check_topology(cfg)
    for node in cfg.broker_nodes:
        home = node_dir(cfg, node)
        home.mkdir(parents=True, exist_ok=True)
        props = home / "server.properties"
        props.write_text(properties(cfg, node))
        if (home / "data" / "meta.properties").exists():
            continue
        cluster_id = recorded_cluster_id(kafka_dir)
        logger.info("formatting KRaft storage of node %d (cluster %s)", node, cluster_id)
        format_ = ["format", f"--cluster-id={cluster_id}", "-c", str(props)]
        result = subprocess.run(
            _java(cfg, "kafka.tools.StorageTool", *format_), capture_output=True, text=True
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise RuntimeError(f"kafka-storage format of node {node} failed: {output[-2000:]}")
    (kafka_dir / "brokers").write_text(f"{cfg.brokers}\n")


def check_topology(cfg: StackConfig) -> None:
    """Refuse (``TopologyChanged``) a node count other than the one the data was formatted
    for; data formatted before the count was recorded is a single node's."""
    kafka_dir = cfg.local / "kafka"
    record = kafka_dir / "brokers"
    if record.exists():
        formatted = int(record.read_text().strip() or 1)
    elif (kafka_dir / "data" / "meta.properties").exists():
        formatted = 1
    else:
        return
    if formatted != cfg.brokers:
        raise TopologyChanged(
            f"the Kafka data in {kafka_dir} is a {formatted}-node cluster's, not a "
            f"{cfg.brokers}-node one: `make clean` deletes the stack's data (Kafka, "
            f"PostgreSQL, Redis) so that `ORDERSTREAM_BROKERS={cfg.brokers} make up` can start "
            "anew, or run with the recorded count"
        )


def programs(cfg: StackConfig) -> list[Program]:
    """One supervised JVM per node."""
    heap = "1g" if cfg.brokers == 1 else "768m"
    return [
        Program(
            program_name(cfg, node),
            _java(cfg, "kafka.Kafka", str(node_dir(cfg, node) / "server.properties"), heap=heap),
            cfg.root,
            priority=10,
            stopwaitsecs=60,
            startsecs=3,
        )
        for node in cfg.broker_nodes
    ]


def _reachable(bootstrap: str) -> str:
    """The first ``host:port`` of ``bootstrap`` that accepts a TCP connection: a plain probe
    first, because kafka-python's reconnect backoff would otherwise add seconds."""
    errors = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            return address.strip()
        except OSError as exc:
            errors.append(f"{address}: {exc}")
    raise ConnectionError("; ".join(errors))


def ping(bootstrap: str, brokers: int = 1) -> None:
    """Kafka answers metadata, with at least ``brokers`` nodes registered."""
    _reachable(bootstrap)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="stack-ping"
    )
    try:
        found = admin.describe_cluster().get("brokers", [])
    finally:
        admin.close()
    if len(found) < brokers:
        raise RuntimeError(f"{len(found)} of {brokers} Kafka nodes registered")


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
    timeout_s: float = 60.0,
    retention_ms: Mapping[str, int] | None = None,
) -> list[str]:
    """Create missing topics with that many partitions and copies; returns the ones created.
    Idempotent: an existing topic keeps its partitions and copies (a warning names what
    differs); the topics of ``retention_ms`` (full name: ms) get that retention, new or not.

    A cluster that has just started may name a controller its metadata does not list yet
    (``UnknownBrokerIdError``): retriable errors are retried with a new client until
    ``timeout_s``."""
    wanted = list(names)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _ensure_topics(
                bootstrap,
                wanted,
                partitions,
                replication_factor,
                min_insync_replicas,
                retention_ms or {},
            )
        except KafkaError as exc:
            retriable = exc.retriable or isinstance(exc, UnknownBrokerIdError)
            if not retriable or time.monotonic() > deadline:
                raise
            logger.info("creating topics: %s; retrying", exc)
            time.sleep(1.0)


def _ensure_topics(
    bootstrap: str,
    wanted: list[str],
    partitions: int,
    replication_factor: int,
    min_insync_replicas: int,
    retention_ms: Mapping[str, int],
) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="stack-topics")
    base = {"min.insync.replicas": str(min_insync_replicas)}

    def config(name: str) -> dict[str, str]:
        kept = retention_ms.get(name)
        return base if kept is None else {**base, "retention.ms": str(kept)}

    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            new = [
                NewTopic(n, partitions, replication_factor, topic_configs=config(n))
                for n in missing
            ]
            try:
                admin.create_topics(new, timeout_ms=30000)
            except TopicAlreadyExistsError:
                pass
        for desc in admin.describe_topics([n for n in wanted if n in existing]):
            found = desc.get("partitions", [])
            copies = {len(p.get("replica_nodes", ())) for p in found}
            if len(found) != partitions or copies != {replication_factor}:
                logger.warning(
                    "topic %s has %d partitions of %s copies, settings say %d of %d "
                    "(not changed: keys would move, or it needs a reassignment)",
                    desc.get("name"),
                    len(found),
                    "/".join(map(str, sorted(copies))) or "?",
                    partitions,
                    replication_factor,
                )
        _keep_retention(
            admin, {n: ms for n, ms in retention_ms.items() if n in wanted and n in existing}
        )
        return missing
    finally:
        admin.close()


def _keep_retention(admin: KafkaAdminClient, retention_ms: Mapping[str, int]) -> None:
    """Set ``retention.ms`` of existing topics where it differs from the settings (a
    changed setting applies at the next ``stack init``); only that key is written (an
    incremental alter)."""
    if not retention_ms:
        return
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in retention_ms]
    ).get("topic", {})
    stale = {
        name: kept
        for name, kept in retention_ms.items()
        if described.get(name, {}).get("retention.ms", {}).get("value") != str(kept)
    }
    if stale:
        admin.alter_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name, {"retention.ms": str(kept)})
                for name, kept in stale.items()
            ]
        )
        logger.info("topics: retention set on %s", ", ".join(sorted(stale)))


@dataclass(frozen=True)
class ClusterView:
    """What ``make status`` shows of Kafka: registered nodes, the KRaft quorum, and the
    partitions that have fewer in-sync copies than copies."""

    nodes: list[int]
    quorum_leader: int | None
    voters: dict[int, str]  # node id -> "leader" / "follower (lag N)" / "?"
    under_replicated: list[str]  # "topic/partition"
    partitions: int


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """partition -> leader node id (-1 while a partition has none)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="stack-leaders")
    try:
        (desc,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return {p["partition_index"]: p["leader_id"] for p in desc.get("partitions", [])}


def under_replicated(bootstrap: str) -> tuple[list[str], int]:
    """The ``topic/partition``s whose in-sync copies are fewer than their copies, and the
    number of partitions looked at."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="stack-status"
    )
    try:
        topics = admin.describe_topics()
    finally:
        admin.close()
    short, total = [], 0
    for desc in topics:
        for p in desc.get("partitions", []):
            total += 1
            if len(p.get("isr_nodes", ())) < len(p.get("replica_nodes", ())):
                short.append(f"{desc['name']}/{p['partition_index']}")
    return sorted(short), total


def quorum(cfg: StackConfig, bootstrap: str) -> tuple[int | None, dict[int, str]]:
    """The KRaft quorum's leader (the active controller) and each voter's state, from
    Kafka's own ``kafka-metadata-quorum describe --replication``."""
    address = _reachable(bootstrap)
    command = _java(
        cfg,
        "org.apache.kafka.tools.MetadataQuorumCommand",
        "--bootstrap-server",
        address,
        "describe",
        "--replication",
        heap="128m",
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError((result.stderr or result.stdout).strip()[-500:])
    return parse_quorum(result.stdout)


def parse_quorum(text: str) -> tuple[int | None, dict[int, str]]:
    """``describe --replication``'s table: NodeId, DirectoryId, LogEndOffset, Lag, ...,
    Status (Leader / Follower / Observer), after the tool's own log lines."""
    leader, voters = None, {}
    lines = [line.split() for line in text.splitlines() if line.strip()]
    starts = [i for i, words in enumerate(lines) if words[:1] == ["NodeId"]]
    if not starts:
        return None, {}
    header = lines[starts[0]]
    for row in lines[starts[0] + 1 :]:
        fields = dict(zip(header, row, strict=False))
        if not fields.get("NodeId", "").isdigit():
            continue
        node, status = int(fields["NodeId"]), fields.get("Status", "?")
        if status == "Leader":
            leader = node
            voters[node] = "leader"
        elif status == "Follower":
            voters[node] = f"follower (lag {fields.get('Lag', '?')})"
        else:
            voters[node] = status.lower()
    return leader, voters


def cluster_view(cfg: StackConfig, bootstrap: str) -> ClusterView:
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="stack-status"
    )
    try:
        nodes = sorted(b["broker_id"] for b in admin.describe_cluster().get("brokers", []))
    finally:
        admin.close()
    short, total = under_replicated(bootstrap)
    leader, voters = quorum(cfg, bootstrap)
    return ClusterView(nodes, leader, voters, short, total)
