"""Exponential backoff with jitter, for retrying while a dependency is down."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float = 0.1
    max_s: float = 10.0
    factor: float = 2.0
    _next: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        self._next = (
            self.initial_s if self._next == 0.0 else min(self._next * self.factor, self.max_s)
        )
        return self._next * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = 0.0
