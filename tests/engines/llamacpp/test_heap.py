"""``HeapTrimmer`` (issue 22): when the engine thread gives back the C heap that grammars freed.
The policy over a fake clock and a fake trim; then the real engine after a grammar request."""

from __future__ import annotations

import pytest

from tests.engines.llamacpp.helpers import chat, generate
from tether.engine.config import EngineConfig
from tether.engine.structured import StructuredOutput
from tether.engines.llamacpp.async_engine import AsyncEngine
from tether.engines.llamacpp.heap import HeapTrimmer, malloc_trim
from tether.engines.llamacpp.sampler import grammars_ended


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def trimmer(clock: Clock, calls: list[float]) -> HeapTrimmer:
    return HeapTrimmer(lambda: calls.append(clock.now), max_interval_s=30.0, clock=clock)


def never() -> bool:
    return False


def always() -> bool:
    return True


def test_nothing_is_trimmed_until_a_grammar_choice_ends() -> None:
    clock, calls = Clock(), list[float]()
    t = trimmer(clock, calls)
    clock.now += 100
    assert not t.after_step(0, grammar_running=never)
    assert calls == []


def test_it_trims_once_the_last_grammar_choice_has_ended_and_once_per_ending() -> None:
    clock, calls = Clock(), list[float]()
    t = trimmer(clock, calls)
    assert not t.after_step(1, grammar_running=always)  # its sibling choices still sample
    assert t.after_step(2, grammar_running=never)
    assert not t.after_step(2, grammar_running=never)  # nothing new has ended
    clock.now += 0.1  # no minimum interval: the next request's end is trimmed too
    assert t.after_step(3, grammar_running=never)
    assert calls == [100.0, 100.1]
    assert t.trims == 2


def test_a_grammar_that_never_stops_still_gets_a_trim_every_max_interval() -> None:
    clock, calls = Clock(), list[float]()
    t = trimmer(clock, calls)
    for ended in range(1, 100):
        clock.now += 1.0
        t.after_step(ended, grammar_running=always)
    assert calls == [130.0, 160.0, 190.0]


def test_the_count_at_construction_is_not_a_new_ending() -> None:
    clock, calls = Clock(), list[float]()
    t = HeapTrimmer(lambda: calls.append(clock.now), grammars_ended=7, clock=clock)
    assert not t.after_step(7, grammar_running=never)
    assert t.after_step(8, grammar_running=never)


def test_without_malloc_trim_it_does_nothing() -> None:
    t = HeapTrimmer(None)
    assert not t.after_step(5, grammar_running=never)
    assert t.trims == 0


@pytest.mark.model
async def test_the_engine_trims_after_a_grammar_request_ends() -> None:
    if malloc_trim is None:
        pytest.skip("this C library has no malloc_trim")
    engine = AsyncEngine(EngineConfig(ctx_size=256, max_seqs=4, batch_tokens=64, max_queue=4))
    await engine.start()
    try:
        before = grammars_ended()
        await generate(engine, chat("Hi"), max_tokens=2)
        assert engine.heap_trimmer.trims == 0  # no grammar, no trim
        choices = await generate(
            engine,
            chat("Describe a cat in JSON."),
            n=4,
            max_tokens=4,
            structured=StructuredOutput.json_object(),
        )
        assert len(choices) == 4
        assert grammars_ended() == before + 4
        # The step that ended the request trimmed before handing out its outputs.
        assert engine.heap_trimmer.trims >= 1
    finally:
        await engine.stop()
