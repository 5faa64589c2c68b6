"""``EventLog``: numbered events, live readers, and events read back from the store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tether.api.endpoints.responses import events as events_module
from tether.api.endpoints.responses.events import EventLog
from tether.engine.request import FinishReason, StepOutput, TokenInfo


def output(text: str, finish: FinishReason | None = None) -> StepOutput:
    tokens = [TokenInfo(ord(c), c, -0.1, False) for c in text]
    return StepOutput("r", 0, tokens, text, finish, 3, len(text), 0, 42)


async def collect(log: EventLog, after: int, older: Any = None) -> list[int]:
    async def no_older(after_seq: int) -> list[dict[str, Any]]:
        raise AssertionError("nothing left memory")

    return [e["sequence_number"] async for e in log.follow(after, older or no_older)]


async def test_events_are_numbered_and_followed_live_from_any_point() -> None:
    log = EventLog()
    for n in range(3):
        log.append({"type": f"e{n}"})
    reader = asyncio.ensure_future(collect(log, after=0))
    await asyncio.sleep(0)
    log.append({"type": "e3"})
    await asyncio.sleep(0)
    log.append({"type": "e4"})
    log.close()
    assert await reader == [1, 2, 3, 4]
    assert await collect(log, after=-1) == [0, 1, 2, 3, 4]
    assert await collect(log, after=4) == []


async def test_events_that_left_memory_come_from_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events_module, "MAX_EVENTS_IN_MEMORY", 4)
    log = EventLog()
    stored = [log.append({"type": "e"}) for _ in range(10)]
    log.close()

    async def older(after_seq: int) -> list[dict[str, Any]]:
        return [dict(e) for e in stored if e["sequence_number"] > after_seq]

    assert await collect(log, after=-1, older=older) == list(range(10))
    assert await collect(log, after=2, older=older) == list(range(3, 10))
    assert await collect(log, after=7, older=older) == [8, 9]


async def test_a_slow_reader_behind_memory_gets_every_event_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Events leave memory only once saved; a reader fed from the store while the job runs
    on (and memory moves past what it read) still gets every event, once, in order."""
    monkeypatch.setattr(events_module, "MAX_EVENTS_IN_MEMORY", 4)
    log = EventLog()
    saved: list[dict[str, Any]] = []

    def produce(count: int) -> None:
        for _ in range(count):
            saved.append(dict(log.append({"type": "e"})))
        log.saved_through(saved[-1]["sequence_number"])

    reads = 0

    async def older(after_seq: int) -> list[dict[str, Any]]:
        nonlocal reads
        reads += 1
        if reads <= 3:
            produce(6)  # the job runs on while the store is read
        return [e for e in saved if e["sequence_number"] > after_seq][:3]

    produce(10)
    reader = log.follow(-1, older)
    seen = [await anext(reader) for _ in range(20)]
    log.close()
    seen += [e async for e in reader]
    assert reads > 3
    assert [e["sequence_number"] for e in seen] == list(range(len(saved)))


def test_unsaved_events_never_leave_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "MAX_EVENTS_IN_MEMORY", 4)
    log = EventLog()
    for _ in range(10):
        log.append({"type": "e"})
    assert log._first == 0  # nothing saved: a plain stream's reader can never fall behind
    log.saved_through(7)
    assert log._first == 6  # keeps the last 4 (and everything unsaved)
