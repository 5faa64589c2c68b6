"""Process-wide counts of C objects, read by tests and ``/metrics``: a leak shows up as a
number that does not come back."""

from __future__ import annotations

import threading


class Counter:
    """A count that any thread may change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self, delta: int = 1) -> None:
        with self._lock:
            self._value += delta

    @property
    def value(self) -> int:
        return self._value
