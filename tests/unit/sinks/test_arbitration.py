from __future__ import annotations

import pytest

from sinks.arbitration import decide_cancel_request, decide_commit


@pytest.mark.parametrize(
    ("status", "cancel_requested", "expected"),
    [
        (None, False, "ship"),
        (None, True, "cancel"),
        ("shipped", False, "already_recorded"),
        ("shipped", True, "already_recorded"),
        ("cancelled", True, "already_recorded"),
        ("rejected", False, "already_recorded"),
    ],
)
def test_decide_commit(status: str | None, cancel_requested: bool, expected: str) -> None:
    assert decide_commit(status, cancel_requested) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "record"),
        ("shipped", "too_late"),
        ("cancelled", "already_final"),
        ("rejected", "already_final"),
    ],
)
def test_decide_cancel_request(status: str | None, expected: str) -> None:
    assert decide_cancel_request(status) == expected
