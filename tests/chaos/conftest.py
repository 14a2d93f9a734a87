"""The chaos run goes last in a test session: its faults then disturb no other test, and a
stack it leaves broken fails only the run itself."""

from __future__ import annotations

from pathlib import Path

import pytest

CHAOS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: CHAOS in Path(str(item.path)).resolve().parents)
