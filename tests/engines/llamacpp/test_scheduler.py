"""``Scheduler``: decode first, then prompt chunks within the step's budget, over a fake KV."""

from __future__ import annotations

import pytest

from tests.engines.llamacpp.test_slots import FakeMemory
from tether.engine.sampling_params import SamplingParams
from tether.engines.llamacpp import scheduler as scheduler_module
from tether.engines.llamacpp.detokenizer import Detokenizer
from tether.engines.llamacpp.scheduler import Scheduler
from tether.engines.llamacpp.sequence import Sequence
from tether.engines.llamacpp.slots import SlotManager


def sequence(request_id: str, prompt_tokens: int) -> Sequence:
    prompt = [hash(request_id) % 1000, *range(2000, 2000 + prompt_tokens - 1)]
    detok = Detokenizer(lambda token: b"x", ())
    return Sequence(request_id, 0, prompt, SamplingParams(max_tokens=8), None, 0, detok)


def step(scheduler: Scheduler) -> dict[str, int]:
    """Schedule once and pretend the batch ran: tokens per request in this step."""
    plan = scheduler.schedule()
    for chunk in plan.chunks:
        chunk.seq.num_computed += len(chunk.tokens)
        if chunk.sample and not chunk.seq.prefilling:
            chunk.seq.tokens.append(7)  # the token it samples
    return {chunk.seq.request_id: len(chunk.tokens) for chunk in plan.chunks}


def scheduler(prefill_chunk: int) -> Scheduler:
    return Scheduler(SlotManager(FakeMemory(4), 4), 512, 8, prefill_chunk)


def test_an_idle_engine_prefills_a_prompt_with_the_whole_budget() -> None:
    s = scheduler(prefill_chunk=64)
    s.add(sequence("a", 300))
    assert step(s) == {"a": 300}


def test_a_prompt_arriving_while_others_decode_comes_in_bounded_chunks() -> None:
    s = scheduler(prefill_chunk=64)
    s.add(sequence("a", 10))
    assert step(s) == {"a": 10}
    s.add(sequence("b", 150))
    # "a" decodes one token every step; "b"'s prompt never takes more than 64 of the step.
    assert step(s) == {"a": 1, "b": 64}
    assert step(s) == {"a": 1, "b": 64}
    assert step(s) == {"a": 1, "b": 22}
    assert step(s) == {"a": 1, "b": 1}  # both decoding now


def test_tokens_a_grammar_forced_go_into_the_next_steps_with_every_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 24: forced tokens are decoded without sampling; each row gives the logprob of
    the token after it, so the chunk asks for all of them. At most ``FORCED_PER_STEP`` ride
    along with the decode token, and never more than the step's budget allows."""
    s = Scheduler(SlotManager(FakeMemory(4), 4), 8, 8, 8)
    a, b = sequence("a", 4), sequence("b", 4)
    s.add(a)
    s.add(b)
    assert step(s) == {"a": 4, "b": 4}
    a.tokens.extend([11, 12, 13, 14, 15, 16, 17])  # forced after its sampled token
    a.pending = 7
    chunks = {chunk.seq.request_id: chunk for chunk in s.schedule().chunks}
    assert chunks["a"].tokens == [7, 11][: 1 + scheduler_module.FORCED_PER_STEP]
    assert chunks["a"].all_logits and not chunks["a"].sample  # the rest wait their turn

    monkeypatch.setattr(scheduler_module, "FORCED_PER_STEP", 100)
    chunks = {chunk.seq.request_id: chunk for chunk in s.schedule().chunks}
    # The budget of 8 keeps one token for "b": "a" gets its sampled token and 6 forced.
    assert chunks["a"].tokens == [7, 11, 12, 13, 14, 15, 16]
    assert chunks["b"].tokens == [7] and chunks["b"].sample
