"""Issue 9: no request can crash the engine through its grammar, and no request leaks the
llama.cpp samplers (C objects Python's garbage collector never sees) or grammar matchers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from tests.engines.llamacpp.helpers import chat, generate
from tether.engine.config import EngineConfig
from tether.engine.errors import QueueFullError, StructuredOutputError
from tether.engine.request import FinishReason, GenerationRequest
from tether.engine.sampling_params import SamplingParams
from tether.engine.structured import StructuredOutput
from tether.engines.llamacpp.async_engine import AsyncEngine
from tether.engines.llamacpp.sampler import live_samplers

pytestmark = pytest.mark.model

YES_NO = StructuredOutput(regex="(yes|no)")


async def _settles(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Whether ``condition`` holds within ``timeout_s`` (aborts land at the next step)."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return condition()


@pytest.fixture
def stalled_engine() -> Iterator[AsyncEngine]:
    """A loaded engine whose decode loop never runs: its one-request queue stays full."""
    engine = AsyncEngine(EngineConfig(ctx_size=256, max_seqs=4, batch_tokens=64, max_queue=1))
    engine.load()
    yield engine
    engine.shutdown()


async def test_3000_refused_requests_leave_the_sampler_count_where_it_was(
    stalled_engine: AsyncEngine,
) -> None:
    prompt = stalled_engine.tokenize(chat("Reply in JSON."))
    params = SamplingParams(max_tokens=16, n=4, structured=StructuredOutput.json_object())
    stalled_engine.generate(GenerationRequest("queued", prompt, params))
    before = live_samplers()

    refused = 0
    for i in range(3000):
        with pytest.raises(QueueFullError):
            stalled_engine.generate(GenerationRequest(f"refused-{i}", prompt, params))
        refused += 1

    assert refused == 3000
    assert live_samplers() == before
    assert stalled_engine.stats().live_samplers == before


def test_a_constraint_that_does_not_compile_allocates_nothing(
    stalled_engine: AsyncEngine,
) -> None:
    """A regex llguidance cannot read, a schema keyword it cannot enforce: refused by the
    compiler, with no matcher left behind."""
    constraints = stalled_engine.core.constraints
    before = live_samplers()
    for i in range(50):
        with pytest.raises(StructuredOutputError):
            constraints.compile(StructuredOutput(regex=f"(?=lookahead){i}"))
        with pytest.raises(StructuredOutputError):
            constraints.compile(StructuredOutput(json_schema={"uniqueItems": True, "x": i}))
    assert live_samplers() == before


async def test_an_inexpressible_constraint_is_refused_before_anything_is_allocated(
    stalled_engine: AsyncEngine,
) -> None:
    before = live_samplers()
    bad = SamplingParams(n=4, structured=StructuredOutput(json_schema={"not": {}}))
    for i in range(20):
        with pytest.raises(StructuredOutputError):
            stalled_engine.generate(GenerationRequest(f"bad-{i}", [2, 100], bad))
    assert live_samplers() == before


async def test_finished_and_aborted_requests_free_their_samplers(
    model_engine: AsyncEngine,
) -> None:
    before = live_samplers()
    await generate(model_engine, chat("Is the sky blue?"), max_tokens=8, structured=YES_NO, n=3)
    assert live_samplers() == before

    request = GenerationRequest(
        "abort-me",
        model_engine.tokenize(chat("Tell me a long story.")),
        SamplingParams(max_tokens=200, n=3, temperature=1.0, top_k=40, ignore_eos=True),
    )
    async with model_engine.generate(request) as stream:
        async for out in stream:
            if out.tokens:
                assert live_samplers() > before  # sampling: the chains exist
                break
    assert await _settles(lambda: live_samplers() == before)


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize(
    "spec, texts",
    [
        (YES_NO, {"yes", "no"}),
        (StructuredOutput(regex="(x){0}"), {""}),  # only the end token is allowed at once
        (StructuredOutput.json_object(), None),
    ],
    ids=["yes-no", "empty", "json-object"],
)
async def test_ignore_eos_ends_the_choice_when_the_grammar_is_complete(
    model_engine: AsyncEngine, spec: StructuredOutput, texts: set[str] | None, n: int
) -> None:
    """llama.cpp threw `Unexpected empty grammar stack` and aborted the process here: the end
    token, the only one a complete grammar allows, is banned by ignore_eos."""
    choices = await generate(
        model_engine,
        chat("Answer in JSON: is the sky blue?"),
        max_tokens=48,
        structured=spec,
        ignore_eos=True,
        n=n,
        temperature=0.0 if n == 1 else 1.0,
        logprobs=2,
    )

    assert len(choices) == n
    for choice in choices:
        if texts is not None:
            assert choice.text in texts
            assert choice.last.finish_reason is FinishReason.STOP
        else:
            assert choice.text.lstrip().startswith("{")
    assert model_engine.ready
