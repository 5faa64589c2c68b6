"""``Scheduler``: decode first, then prompt chunks within the step's budget, over a fake KV."""

from __future__ import annotations

from tests.engines.llamacpp.test_slots import FakeMemory
from tether.engine.sampling_params import SamplingParams
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
        if chunk.sample and not chunk.seq.prefilling and chunk.seq.num_generated == 0:
            chunk.seq.tokens.append(7)  # its first sampled token
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
