"""Dead letters on the running pipeline: poison records sent to a worker's inputs and to the
sink's are dead-lettered with their origin and reason; ``orderstream deadletters`` lists,
shows and replays them; a replayed poison record is dead-lettered again with the same
reason, and replaying it a second time publishes nothing."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner, Result
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from orderstream.cli import cli
from schemas import topics as names
from schemas.deadletter import dead_letter_event_id

REPLAYED = re.compile(r"^(\S+)  replayed to (\S+)\[(\d+)\]@(\d+)$", re.MULTILINE)


@pytest.fixture
def run_cli(stack) -> Callable[..., Result]:
    env = stack.settings.to_env()

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["deadletters", *args], env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def producer(stack) -> Iterator[KafkaProducer]:
    client = KafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, acks="all")
    yield client
    client.close()


def listed(run_cli: Callable[..., Result], *args: str) -> dict[str, list[str]]:
    """event id -> the line's fields, as ``deadletters list`` printed them."""
    result = run_cli("list", *args)
    assert result.exit_code == 0, result.output
    return {line.split("  ")[0]: line.split("  ") for line in result.stdout.splitlines()}


def wait_listed(
    run_cli: Callable[..., Result], event_ids: set[str], *args: str, timeout: float = 60
) -> dict[str, list[str]]:
    deadline = time.monotonic() + timeout
    while True:
        found = listed(run_cli, *args)
        if event_ids <= found.keys():
            return {e: found[e] for e in event_ids}
        assert time.monotonic() < deadline, f"not dead-lettered: {event_ids - found.keys()}"
        time.sleep(1)


def end_offset(stack, topic: str, partition: int) -> int:
    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap)
    try:
        tp = TopicPartition(topic, partition)
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close()


def test_poison_records_are_listed_shown_and_replayed_once(stack, run_cli, producer) -> None:
    topics = stack.settings.topics
    run = uuid.uuid4().hex[:8]
    since = datetime.now(UTC).isoformat()
    poison = {  # a worker's two inputs and one of the sink's
        topics(names.ORDER_REQUESTS): (f"E2E-{run}-poison".encode(), b"\xff\xfe not json"),
        topics(names.ORDER_RESERVATIONS): (f"poison-{run}".encode(), b'{"type": "nothing"}'),
        topics(names.ORDERS_COMMITTED): (f"poison-{run}".encode(), b"{not json " + run.encode()),
    }
    origin = {}
    for topic, (key, value) in poison.items():
        sent = producer.send(topic, key=key, value=value).get(timeout=30)
        origin[dead_letter_event_id(topic, sent.partition, sent.offset)] = (topic, sent)

    # list: each once, with its origin, consumer and reason
    lines = wait_listed(run_cli, set(origin), "--since", since)
    consumers = {}
    for event_id, (topic, sent) in origin.items():
        _, failed_at, consumer, where, reason = lines[event_id]
        assert where == f"{topic}[{sent.partition}]@{sent.offset}"
        assert reason.startswith("cannot decode: "), reason
        assert datetime.fromisoformat(failed_at) >= datetime.fromisoformat(since)
        consumers[topic] = consumer
    assert consumers[topics(names.ORDER_REQUESTS)].endswith(":reserve_stock")
    assert consumers[topics(names.ORDER_RESERVATIONS)].endswith(":settle_orders")
    assert consumers[topics(names.ORDERS_COMMITTED)].endswith(".sink")
    for topic in poison:  # the filters
        only = listed(run_cli, "--since", since, "--source-topic", topic)
        assert {e for e in origin if origin[e][0] == topic} <= only.keys()
        assert all(fields[3].startswith(f"{topic}[") for fields in only.values())
    assert len(listed(run_cli, "--since", since, "--limit", "1")) == 1
    assert not listed(run_cli, "--since", since, "--reason-contains", f"no such {run}")

    # show: the whole envelope, the value as text where it is text
    sink_letter = next(e for e, (t, _) in origin.items() if t == topics(names.ORDERS_COMMITTED))
    result = run_cli("show", sink_letter)
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["event_id"] == sink_letter
    assert envelope["value"] == f"{{not json {run}"
    assert envelope["key"] == f"poison-{run}"
    request_letter = next(e for e, (t, _) in origin.items() if t == topics(names.ORDER_REQUESTS))
    shown_bytes = json.loads(run_cli("show", request_letter).stdout)["value"]
    assert shown_bytes == {"base64": "//4gbm90IGpzb24="}
    assert run_cli("show", f"no-such-{run}").exit_code == 1

    # replay: each copy goes to its source partition and is dead-lettered again, same reason
    result = run_cli("replay", *origin)
    assert result.exit_code == 0, result.output
    copies = {}
    for event_id, topic, partition, offset in REPLAYED.findall(result.stdout):
        assert (topic, int(partition)) == (origin[event_id][0], origin[event_id][1].partition)
        copies[event_id] = dead_letter_event_id(topic, int(partition), int(offset))
    assert copies.keys() == origin.keys(), result.output
    again = wait_listed(run_cli, set(copies.values()), "--since", since)
    for event_id, copy in copies.items():
        assert again[copy][4] == lines[event_id][4]  # the same reason
        assert again[copy][2] == lines[event_id][2]  # dead-lettered by the same program
    result = run_cli("show", request_letter)
    assert json.loads(result.stdout)["event_id"] == request_letter
    assert "replayed at" in result.stderr

    # replaying again changes nothing: every one is skipped, nothing is published
    # (orders.reservations also carries the settler's expiry ticks: its end moves anyway)
    quiet = {e: o for e, o in origin.items() if o[0] != topics(names.ORDER_RESERVATIONS)}
    ends = {e: end_offset(stack, t, s.partition) for e, (t, s) in quiet.items()}
    result = run_cli("replay", *origin)
    assert result.exit_code == 0, result.output
    assert REPLAYED.findall(result.stdout) == []
    assert "0 replayed, 3 skipped" in result.stdout
    assert all(f"{e}  skipped" in result.stdout for e in origin)
    # --all leaves out the copies' own dead letters: the same poison, replayed already
    result = run_cli(
        "replay", "--all", "--since", since, "--source-topic", topics(names.ORDER_RESERVATIONS)
    )
    assert result.exit_code == 0, result.output
    reservations_copy = next(
        copy for e, copy in copies.items() if origin[e][0] == topics(names.ORDER_RESERVATIONS)
    )
    assert reservations_copy not in result.stdout
    assert REPLAYED.findall(result.stdout) == [], result.stdout
    time.sleep(2)
    assert {e: end_offset(stack, t, s.partition) for e, (t, s) in quiet.items()} == ends

    # --force replays a recorded one anyway
    result = run_cli("replay", "--force", request_letter)
    assert result.exit_code == 0, result.output
    assert [m[0] for m in REPLAYED.findall(result.stdout)] == [request_letter]
