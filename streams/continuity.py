"""The continuity check: a table partition decides only on a state that holds every record
its consumer has already committed past.

A source partition's offsets are committed only once the changelog records of the batches
that processed them are acknowledged (``streams.faustutil.Outbox``), and each batch ends its
partition's changelog writes with the partition's ``SourceMark``. After any correct restore,
the first record a partition is handed (at its committed offset) therefore follows its mark.
A batch that starts further on means the restore missed writes: the partition is older than
its changelog, and deciding on it would hand out stock already sold.

The worker then refuses the batch before writing anything (its records are not acked, so
they come again): it forgets the partition's persisted changelog offset, so that the next
start restores the whole partition from its changelog, and exits.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from faust.types import EventT

from orderstream.core.logs import context
from streams.exceptions import StreamsError
from streams.faustinternals import forget_persisted_offset
from streams.records import SourceMark

logger = logging.getLogger(__name__)

EXIT_TABLE_BEHIND = 71


@dataclass(frozen=True)
class Gap:
    """Records ``applied + 1 .. first - 1`` of ``topic``/``partition`` were committed past
    but their effects are not in the table."""

    topic: str
    partition: int
    applied: int
    first: int

    def __str__(self) -> str:
        return (
            f"{self.topic}[{self.partition}]: the table holds offsets up to {self.applied}, "
            f"the batch starts at {self.first}"
        )


class TableBehind(StreamsError):
    """A batch starts past what its table partition holds (``Gap``)."""

    def __init__(self, gaps: Sequence[Gap]) -> None:
        super().__init__("; ".join(str(gap) for gap in gaps))
        self.gaps = tuple(gaps)


def gaps(mark: SourceMark | None, events: Iterable[EventT]) -> list[Gap]:
    """The source topics whose first event in ``events`` (one partition's, in offset order)
    does not follow ``mark``. A partition without a mark yet has nothing to check."""
    if mark is None:
        return []
    first: dict[str, EventT] = {}
    for event in events:
        first.setdefault(event.message.topic, event)
    found = []
    for topic, event in first.items():
        applied = mark.offsets.get(topic)
        if applied is not None and event.message.offset > applied + 1:
            found.append(Gap(topic, event.message.partition, applied, event.message.offset))
    return found


def advanced(mark: SourceMark | None, events: Iterable[EventT]) -> SourceMark:
    """``mark`` raised to the last offset of each source topic in ``events``."""
    offsets = dict(mark.offsets) if mark is not None else {}
    for event in events:
        topic, offset = event.message.topic, event.message.offset
        if offset > offsets.get(topic, -1):
            offsets[topic] = offset
    return SourceMark(offsets=offsets)


def exit_for_restore(table: Any, behind: TableBehind) -> NoReturn:
    """Make the next start restore ``table``'s partitions of ``behind`` in full (a Faust
    table), and exit now."""
    for partition in sorted({gap.partition for gap in behind.gaps}):
        forget_persisted_offset(table.data, partition)
    first = behind.gaps[0]
    logger.critical(
        "table partition behind its changelog: %s, %s; exiting to restore it",
        table.name,
        behind,
        extra=context(topic=first.topic, partition=first.partition, offset=first.first),
    )
    logging.shutdown()
    os._exit(EXIT_TABLE_BEHIND)
