"""``orderstream deadletters list|show|replay``: see and replay what was dead-lettered.

Every program that cannot process a record sends an envelope (``schemas.deadletter``) to
``orders.deadletter``. ``list`` reads that topic to its end (no consumer group, nothing
committed) and prints one line per dead letter, deduplicated by ``event_id`` (the relay is
at least once, and a worker processing a record again dead-letters it under the same id).
``show`` prints one envelope. ``replay`` publishes the original key and value bytes to the
original source topic again, with the same key, in the partition the default partitioner
gives that key (murmur2 as the ingress, the workers and the Java client use it:
``schemas.partitioning``), which is the partition it came from; a record without a key
goes back to its own partition.

Replay is idempotent: the ``dead_letter_replays`` table (migration 0005, which says why a
table) records every replayed ``event_id``; a recorded one is skipped unless ``--force``.
The row is inserted, the record published and acked, and only then the row committed: a
failed publish records nothing, and two replays of one dead letter cannot both publish.
Re-publishing is safe for the pipeline, which is idempotent per order (event ids, order
lines, Idempotency-Keys): a good record already applied changes nothing, and a poison
record is dead-lettered again with the same reason, under the id of the copy's position,
which the row records (``replayed_as``) so that ``replay --all`` does not replay the
copy's dead letter in turn.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
import sqlalchemy as sa
from kafka import KafkaProducer

from orderstream.core.settings import Settings
from orderstream.topicread import read_to_end
from schemas.deadletter import DeadLetter, dead_letter_event_id
from schemas.partitioning import partition_for
from schemas.topics import DEAD_LETTER


@dataclass(frozen=True)
class Filters:
    source_topic: str | None = None
    reason_contains: str | None = None
    since: datetime | None = None

    def match(self, letter: DeadLetter) -> bool:
        if self.source_topic is not None and letter.source_topic != self.source_topic:
            return False
        if self.reason_contains is not None and self.reason_contains not in letter.reason:
            return False
        return self.since is None or letter.failed_at >= self.since


def dedupe(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """One per ``event_id`` (its first), ordered by ``failed_at``."""
    seen: dict[str, DeadLetter] = {}
    for letter in letters:
        seen.setdefault(letter.event_id, letter)
    return sorted(seen.values(), key=lambda d: (d.failed_at, d.event_id))


def select(letters: Iterable[DeadLetter], filters: Filters, limit: int | None) -> list[DeadLetter]:
    """The dead letters matching ``filters``, deduplicated, oldest first; with ``limit``,
    only the ``limit`` most recent of them."""
    found = [d for d in dedupe(letters) if filters.match(d)]
    if limit is None:
        return found
    return found[-limit:] if limit > 0 else []


def line(letter: DeadLetter) -> str:
    return (
        f"{letter.event_id}  {letter.failed_at.isoformat()}  {letter.consumer}  "
        f"{letter.source_topic}[{letter.partition}]@{letter.offset}  {letter.reason}"
    )


def shown(letter: DeadLetter) -> str:
    """The whole envelope, pretty; key and value as text where they are text."""
    envelope: dict[str, Any] = dict(letter.envelope)
    for name in ("key", "value"):
        field = envelope.get(name)
        if isinstance(field, dict) and "text" in field:
            envelope[name] = field["text"]
    return json.dumps(envelope, indent=2, sort_keys=True, ensure_ascii=False)


def parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class DeadLetters:
    """The dead-letter topic and the replay record of one stack."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topics(DEAD_LETTER)
        self.unreadable = 0  # records of the topic that are not envelopes
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.settings.database_url, pool_pre_ping=True)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def read(self) -> Iterator[DeadLetter]:
        self.unreadable = 0
        for record in read_to_end(self.settings.kafka_bootstrap, self.topic):
            try:
                yield DeadLetter.parse(record.value)
            except ValueError:
                self.unreadable += 1

    def find(self, event_ids: Iterable[str]) -> dict[str, DeadLetter]:
        wanted = set(event_ids)
        return {d.event_id: d for d in dedupe(self.read()) if d.event_id in wanted}

    def replayed(self) -> dict[str, dict[str, Any]]:
        """Every recorded replay by event id."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM dead_letter_replays")).mappings().all()
        return {row["event_id"]: dict(row) for row in rows}

    def replay(self, letters: list[DeadLetter], *, force: bool) -> list[tuple[DeadLetter, str]]:
        """Publish each dead letter's record to its source topic again, unless replayed
        already (``force``: replay anyway). Returns (letter, what happened) per letter."""
        outcomes: list[tuple[DeadLetter, str]] = []
        producer = KafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, acks="all", retries=5
        )
        try:
            for letter in letters:
                outcomes.append((letter, self._replay_one(producer, letter, force=force)))
        finally:
            producer.close()
        return outcomes

    def _replay_one(self, producer: KafkaProducer, letter: DeadLetter, *, force: bool) -> str:
        upsert = (
            "INSERT INTO dead_letter_replays (event_id) VALUES (:id) ON CONFLICT (event_id) "
            + ("DO UPDATE SET replayed_at = now()" if force else "DO NOTHING")
            + " RETURNING event_id"
        )
        with self.engine.begin() as conn:  # committed only once the broker acked the copy
            if conn.execute(sa.text(upsert), {"id": letter.event_id}).first() is None:
                return "skipped: replayed before (--force to replay again)"
            partition = letter.partition  # a record without a key: where it was
            if letter.key is not None:  # where the ingress and the workers put this key
                count = len(producer.partitions_for(letter.source_topic))
                partition = partition_for(letter.key, count)
            sent = producer.send(
                letter.source_topic, key=letter.key, value=letter.value, partition=partition
            ).get(timeout=60)
            conn.execute(
                sa.text(
                    "UPDATE dead_letter_replays SET target_topic = :t, target_partition = :p,"
                    " target_offset = :o, replayed_as = :as WHERE event_id = :id"
                ),
                {
                    "id": letter.event_id,
                    "t": sent.topic,
                    "p": sent.partition,
                    "o": sent.offset,
                    "as": dead_letter_event_id(sent.topic, sent.partition, sent.offset),
                },
            )
        return f"replayed to {sent.topic}[{sent.partition}]@{sent.offset}"


def filter_options(command: Any) -> Any:
    command = click.option("--source-topic", help="only dead letters of this topic")(command)
    command = click.option("--reason-contains", help="only reasons containing this text")(command)
    command = click.option("--since", help="only dead letters failed at or after (ISO 8601)")(
        command
    )
    return command


def _filters(source_topic: str | None, reason_contains: str | None, since: str | None) -> Filters:
    try:
        return Filters(source_topic, reason_contains, parse_since(since))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc


def _warn_unreadable(store: DeadLetters) -> None:
    if store.unreadable:
        click.echo(f"{store.unreadable} record(s) of {store.topic} are not envelopes", err=True)


@click.group()
def deadletters() -> None:
    """List, show and replay the records on orders.deadletter."""


@deadletters.command(name="list")
@filter_options
@click.option("--limit", type=int, help="only the N most recent")
def list_command(
    source_topic: str | None, reason_contains: str | None, since: str | None, limit: int | None
) -> None:
    """One line per dead letter, oldest first: event id, failed at, consumer, source
    topic[partition]@offset, reason."""
    filters = _filters(source_topic, reason_contains, since)
    store = DeadLetters(Settings.from_env())
    for letter in select(store.read(), filters, limit):
        click.echo(line(letter))
    _warn_unreadable(store)


@deadletters.command()
@click.argument("event_id")
def show(event_id: str) -> None:
    """The whole envelope of one dead letter (stdout), and when it was replayed (stderr)."""
    store = DeadLetters(Settings.from_env())
    try:
        letter = store.find([event_id]).get(event_id)
        if letter is None:
            click.echo(f"no dead letter {event_id}", err=True)
            sys.exit(1)
        click.echo(shown(letter))
        replay = store.replayed().get(event_id)
        if replay is not None:
            click.echo(
                f"replayed at {replay['replayed_at'].isoformat()} to {replay['target_topic']}"
                f"[{replay['target_partition']}]@{replay['target_offset']}",
                err=True,  # stdout stays the envelope alone, for jq
            )
    finally:
        store.close()


@deadletters.command()
@click.argument("event_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="every dead letter the filters match")
@filter_options
@click.option("--force", is_flag=True, help="replay even what was replayed before")
def replay(
    event_ids: tuple[str, ...],
    everything: bool,
    source_topic: str | None,
    reason_contains: str | None,
    since: str | None,
    force: bool,
) -> None:
    """Publish dead letters' records to their source topics again (by EVENT_ID, or --all).

    What was replayed before is skipped unless --force. --all leaves out the dead letters
    of replayed copies (a poison record that failed again): name them to replay them."""
    if bool(event_ids) == everything:
        raise click.UsageError("give EVENT_ID... or --all, not both")
    filters = _filters(source_topic, reason_contains, since)
    store = DeadLetters(Settings.from_env())
    try:
        if everything:
            copies = {r["replayed_as"] for r in store.replayed().values()}
            letters = [d for d in select(store.read(), filters, None) if d.event_id not in copies]
            missing: list[str] = []
        else:
            found = store.find(event_ids)
            letters = [found[e] for e in dict.fromkeys(event_ids) if e in found]
            missing = [e for e in event_ids if e not in found]
        _warn_unreadable(store)
        for event_id in missing:
            click.echo(f"{event_id}  not found on {store.topic}", err=True)
        outcomes = store.replay(letters, force=force)
    finally:
        store.close()
    for letter, outcome in outcomes:
        click.echo(f"{letter.event_id}  {outcome}")
    replayed = sum(1 for _, o in outcomes if o.startswith("replayed"))
    click.echo(f"{replayed} replayed, {len(outcomes) - replayed} skipped, {len(missing)} not found")
    if missing:
        sys.exit(1)
