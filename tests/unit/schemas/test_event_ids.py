"""Event ids are the contract's UUIDv5s: built by hand for speed, equal to ``uuid.uuid5``."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from schemas.common import EVENT_NAMESPACE, event_id_for

parts = st.lists(st.one_of(st.text(), st.integers()), min_size=1, max_size=4)


@given(parts)
def test_an_event_id_is_the_uuid5_of_its_parts(values: list[object]) -> None:
    expected = uuid.uuid5(EVENT_NAMESPACE, ":".join(str(v) for v in values))
    found = event_id_for(*values)
    assert found == str(expected)
    assert uuid.UUID(found).version == 5


def test_the_same_fact_gets_the_same_id_and_another_fact_another() -> None:
    assert event_id_for("o1", 0, "line") == event_id_for("o1", 0, "line")
    assert event_id_for("o1", 0, "line") != event_id_for("o1", 1, "line")
