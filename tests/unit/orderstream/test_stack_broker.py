"""The local Kafka topology: one node, or a cluster whose replication comes from its size."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderstream.core.settings import Settings
from orderstream.stack import broker
from orderstream.stack.config import StackConfig
from orderstream.stack.pipeline import programs
from orderstream.stack.runner import stack_values


def config(local: Path, brokers: int, offset: int = 0) -> StackConfig:
    return StackConfig.from_env(
        {
            "ORDERSTREAM_STACK_DIR": str(local),
            "ORDERSTREAM_BROKERS": str(brokers),
            "ORDERSTREAM_STACK_PORT_OFFSET": str(offset),
        }
    )


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_one_node_keeps_its_ports_names_and_directory(tmp_path: Path) -> None:
    cfg = config(tmp_path, 1)
    assert cfg.kafka_bootstrap == "127.0.0.1:19092"
    assert broker.program_names(cfg) == ["kafka"]
    assert broker.node_dir(cfg, 1) == tmp_path / "kafka"
    found = props(broker.properties(cfg, 1))
    assert found["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert found["default.replication.factor"] == "1"
    assert found["min.insync.replicas"] == "1"
    assert "broker.session.timeout.ms" not in found  # Kafka's 9 s: no other node to lead


def test_three_nodes_are_voters_on_their_own_ports_with_three_copies(tmp_path: Path) -> None:
    cfg = config(tmp_path, 3, offset=500)
    assert cfg.kafka_bootstrap == "127.0.0.1:19592,127.0.0.1:19594,127.0.0.1:19596"
    assert broker.program_names(cfg) == ["kafka-1", "kafka-2", "kafka-3"]
    voters = "1@127.0.0.1:19593,2@127.0.0.1:19595,3@127.0.0.1:19597"
    listens = set()
    for node in (1, 2, 3):
        found = props(broker.properties(cfg, node))
        assert found["node.id"] == str(node)
        assert found["controller.quorum.voters"] == voters
        assert found["log.dirs"] == str(tmp_path / "kafka" / f"node-{node}" / "data")
        for key in ("default.replication.factor", "offsets.topic.replication.factor"):
            assert found[key] == "3", key
        for key in ("min.insync.replicas", "transaction.state.log.min.isr"):
            assert found[key] == "2", key
        assert found["unclean.leader.election.enable"] == "false"
        assert found["broker.session.timeout.ms"] == str(broker.CLUSTER_SESSION_TIMEOUT_MS)
        listens.add(found["listeners"])
    assert len(listens) == 3


@pytest.mark.parametrize(("brokers", "rf", "min_isr"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_replication_follows_the_node_count(brokers: int, rf: int, min_isr: int) -> None:
    cfg = StackConfig(root=Path("/r"), local=Path("/l"), brokers=brokers)
    assert (cfg.replication_factor, cfg.min_insync_replicas) == (rf, min_isr)


def test_stack_env_records_replication_and_the_programs_read_it(tmp_path: Path) -> None:
    cfg = config(tmp_path, 3)
    values = stack_values(cfg, Settings(), {"STOREFRONT_KEY": "s", "ADMIN_KEY": "a"}, None)
    assert values["ORDERSTREAM_REPLICATION_FACTOR"] == "3"
    assert values["ORDERSTREAM_MIN_INSYNC_REPLICAS"] == "2"
    assert values["ORDERSTREAM_STANDBY_REPLICAS"] == "1"
    assert values["KAFKA_BOOTSTRAP"].count(",") == 2
    settings = Settings.from_env(values)
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
    # the broker count itself is the stack's: no program reads it
    assert all("ORDERSTREAM_BROKERS" not in p.environment for p in programs(cfg, values))


def test_another_node_count_than_the_data_was_formatted_for_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "brokers").write_text("3\n")
    broker.check_topology(config(tmp_path, 3))
    with pytest.raises(broker.TopologyChanged, match="make clean"):
        broker.check_topology(config(tmp_path, 1))


def test_data_formatted_before_the_count_was_recorded_is_one_nodes(tmp_path: Path) -> None:
    broker.check_topology(config(tmp_path, 3))  # nothing formatted: any count
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("node.id=1\n")
    broker.check_topology(config(tmp_path, 1))
    with pytest.raises(broker.TopologyChanged):
        broker.check_topology(config(tmp_path, 3))


ROWS = [
    ("NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp", "Status"),
    ("2", "AAAAAAAAAAAAAAAAAAAAAA", "213", "0", "1796218863200", "Leader"),
    ("1", "AAAAAAAAAAAAAAAAAAAAAA", "213", "0", "1796218862959", "Follower"),
    ("3", "AAAAAAAAAAAAAAAAAAAAAA", "190", "23", "1796218862976", "Follower"),
]
# the tool's output: its log lines around a tab-separated, space-padded table
QUORUM = "\n".join(
    [
        "[2026-12-02 13:41:01,992] INFO AdminClientConfig values:",
        "\tbootstrap.servers = [127.0.0.1:19592]",
        *("\t".join(f"{cell:<8}" for cell in row) + "\t" for row in ROWS),
        "[2026-12-02 13:41:03,236] INFO Metrics scheduler closed",
    ]
)


def test_the_quorum_table_gives_the_active_controller_and_each_voters_lag() -> None:
    leader, voters = broker.parse_quorum(QUORUM)
    assert leader == 2
    assert voters == {2: "leader", 1: "follower (lag 0)", 3: "follower (lag 23)"}
    assert broker.parse_quorum("no table here\n") == (None, {})


def test_status_names_missing_nodes_and_under_replicated_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orderstream.stack import runner

    short = [f"orders.requests/{p}" for p in range(10)]
    view = broker.ClusterView([1, 3], 1, {1: "leader", 3: "follower (lag 0)"}, short, 98)
    monkeypatch.setattr(broker, "cluster_view", lambda cfg, bootstrap: view)
    lines = runner.kafka_status(config(tmp_path, 3))
    assert lines[0] == "kafka nodes: 2 of 3 registered [1, 3], missing [2]"
    assert lines[2] == "controller quorum: leader 1; node 1 leader, node 3 follower (lag 0)"
    assert lines[3].startswith("under-replicated partitions: 10 of 98 (orders.requests/0, ")
    assert lines[3].endswith("orders.requests/7, ...)")

    def unreachable(cfg: StackConfig, bootstrap: str) -> broker.ClusterView:
        raise ConnectionError("refused")

    monkeypatch.setattr(broker, "cluster_view", unreachable)
    assert runner.kafka_status(config(tmp_path, 3)) == [
        "kafka: no answer (ConnectionError: refused)"
    ]
