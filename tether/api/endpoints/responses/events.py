"""``EventLog``: a response's events, numbered from 0, with readers that follow them live
from any sequence number; events the job saved may leave memory and are read back from
the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

# Events of one response kept in memory; older ones are read back from the store.
MAX_EVENTS_IN_MEMORY = 4096


class EventLog:
    """A response's events, numbered from 0, with readers that follow them live.

    Memory keeps at most ``MAX_EVENTS_IN_MEMORY`` events, and drops only events the job
    marked saved (``saved_through``): an event that left memory can always be read back.
    """

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._first = 0  # sequence number of self._events[0]
        self._saved = -1  # events up to this sequence number are in the store
        self._changed = asyncio.Event()
        self.closed = False

    @property
    def next_sequence(self) -> int:
        return self._first + len(self._events)

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        event["sequence_number"] = self.next_sequence
        self._events.append(event)
        self._trim()
        self._wake()
        return event

    def saved_through(self, sequence_number: int) -> None:
        self._saved = max(self._saved, sequence_number)
        self._trim()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _trim(self) -> None:
        excess = len(self._events) - MAX_EVENTS_IN_MEMORY
        drop = min(excess, self._saved + 1 - self._first)
        if drop > 0:
            del self._events[:drop]
            self._first += drop

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(
        self, after: int, older: Callable[[int], Awaitable[list[dict[str, Any]]]]
    ) -> AsyncIterator[dict[str, Any]]:
        """Every event with a sequence number above ``after``, in order and each once, then
        each new one until the log closes. ``older(n)`` reads saved events after ``n``."""
        next_seq = after + 1
        while True:
            changed = self._changed
            if next_seq < self._first:
                progressed = False
                for event in await older(next_seq - 1):
                    if event["sequence_number"] != next_seq:
                        continue
                    yield event
                    next_seq, progressed = next_seq + 1, True
                    if next_seq >= self._first:
                        break
                if not progressed and next_seq < self._first:
                    raise RuntimeError(f"event {next_seq} is neither in memory nor stored")
                continue
            if next_seq < self.next_sequence:
                yield self._events[next_seq - self._first]
                next_seq += 1
                continue
            if self.closed:
                return
            await changed.wait()
