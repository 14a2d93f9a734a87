"""The long-running processes' collector settings (orderstream.core.gctune)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from orderstream.core import gctune


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_thresholds_default_to_ours_python_keeps_cpython_s_and_a_triple_is_taken() -> None:
    assert gctune.thresholds(None) == gctune.THRESHOLDS
    assert gctune.thresholds("") == gctune.THRESHOLDS
    assert gctune.thresholds("python") is None
    assert gctune.thresholds("1000,20,30") == (1000, 20, 30)
    with pytest.raises(ValueError):
        gctune.thresholds("1000,20")


def test_tune_freezes_what_exists_and_sets_the_thresholds(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORDERSTREAM_GC", raising=False)
    gctune.tune()
    assert gc.get_threshold() == gctune.THRESHOLDS
    assert gc.get_freeze_count() > 0


def test_tune_with_python_leaves_the_collector_alone(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERSTREAM_GC", "python")
    before = gc.get_threshold()
    gctune.tune()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
