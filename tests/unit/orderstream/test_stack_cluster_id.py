"""KRaft cluster ids: the shape Kafka accepts, never one ``kafka-storage`` reads as an option."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from orderstream.stack.broker import is_cluster_id, new_cluster_id, recorded_cluster_id

# 22 characters of the URL-safe base64 alphabet, unpadded; the last one carries the last 2 of
# the 128 bits and 4 zero bits, so it is one of the four letters whose low 4 bits are zero.
KAFKA_UUID_TEXT = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]")


def test_many_fresh_ids_have_kafkas_shape_and_none_starts_with_a_dash() -> None:
    # one draw in 64 started with '-' before: 20,000 draws without one cannot be luck
    ids = [new_cluster_id() for _ in range(20_000)]
    assert all(KAFKA_UUID_TEXT.fullmatch(i) for i in ids)
    assert not any(i.startswith("-") for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)


@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=8))
def test_the_first_draw_without_a_dash_is_the_id(draws: list[bytes]) -> None:
    def text(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    draws = [*draws, bytes(16)]  # a last draw that always qualifies ("AAAA...")
    source = iter(draws)
    found = new_cluster_id(lambda: next(source))
    expected = next(raw for raw in draws if "-" not in text(raw))
    assert found == text(expected)
    assert KAFKA_UUID_TEXT.fullmatch(found) and is_cluster_id(found)


def test_a_draw_that_would_start_with_a_dash_is_skipped() -> None:
    draws = iter([b"\xf8" + bytes(15), bytes(15) + b"\x01"])  # "-AAA...", "AAA...AQ"
    assert new_cluster_id(lambda: next(draws)) == "AAAAAAAAAAAAAAAAAAAAAQ"


@given(st.binary(min_size=16, max_size=16))
def test_the_text_of_any_16_bytes_is_an_id(raw: bytes) -> None:
    assert is_cluster_id(base64.urlsafe_b64encode(raw).decode().rstrip("="))


def test_texts_that_are_not_16_bytes_of_base64_are_not_ids() -> None:
    for text in ("", "AAAA", "A" * 21, "A" * 23, "AAAAAAAAAAAAAAAAAAAAAB", "A" * 20 + "=="):
        assert not is_cluster_id(text), text
    assert not is_cluster_id("AAAAAAAAAA AAAAAAAAAAA")
    assert not is_cluster_id("AAAAAAAAAAAAAAAAAAAA+A")


def test_the_id_is_recorded_once_and_reused_by_a_later_format(tmp_path: Path) -> None:
    first = recorded_cluster_id(tmp_path)
    assert (tmp_path / "cluster.id").read_text() == first + "\n"
    assert recorded_cluster_id(tmp_path) == first


def test_an_unreadable_record_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "cluster.id").write_text("not an id\n")
    replaced = recorded_cluster_id(tmp_path)
    assert is_cluster_id(replaced)
    assert (tmp_path / "cluster.id").read_text() == replaced + "\n"
