"""The engine on the real default model: batching, sampling, stop strings, KV bookkeeping."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import textwrap

import pytest

from tests.engines.llamacpp.helpers import chat, generate, generate_many
from tether.engine.errors import (
    ContextLengthExceededError,
    QueueFullError,
    StructuredOutputError,
)
from tether.engine.request import FinishReason, GenerationRequest, TokenInfo
from tether.engine.sampling_params import SamplingParams
from tether.engine.structured import StructuredOutput
from tether.engines.llamacpp.async_engine import AsyncEngine

pytestmark = pytest.mark.model

TOPICS = ["the sea", "a cat", "rain", "mountains", "coffee", "a robot", "winter", "the moon"]


def story(topic: str) -> str:
    return chat(f"Write a short story about {topic}.")


async def test_greedy_is_deterministic(model_engine: AsyncEngine) -> None:
    first = (await generate(model_engine, story("a lighthouse"), max_tokens=24, temperature=0))[0]
    again = (await generate(model_engine, story("a lighthouse"), max_tokens=24, temperature=0))[0]
    assert first.token_ids == again.token_ids
    assert first.text == again.text
    assert len(first.token_ids) > 0


async def test_greedy_ignores_the_default_filters(model_engine: AsyncEngine) -> None:
    """Issue 12: requests now get llama.cpp's top-k/top-p/min-p by default; with
    ``temperature: 0`` they change nothing, greedy is the plain argmax."""
    prompt = story("a lighthouse")
    plain = (await generate(model_engine, prompt, max_tokens=24, temperature=0))[0]
    filtered = await generate(
        model_engine, prompt, max_tokens=24, temperature=0, top_k=40, top_p=0.95, min_p=0.05
    )
    assert filtered[0].token_ids == plain.token_ids


async def test_greedy_alone_and_inside_a_batch_of_8(model_engine: AsyncEngine) -> None:
    """llama.cpp's CPU kernels sum in an order that depends on the batch's shape, so a
    near-tie between two tokens can flip. Measured (ARCHITECTURE.md): 5 of these 8 prompts
    give the same 32 greedy tokens alone and batched; the others agree on at least the
    first 6 tokens. This pins that tolerance so a real batching bug (wrong positions,
    crossed sequences) fails loudly."""
    alone = [
        (await generate(model_engine, story(t), max_tokens=32, temperature=0))[0] for t in TOPICS
    ]
    batched = await generate_many(
        model_engine, [story(t) for t in TOPICS], max_tokens=32, temperature=0
    )
    identical = sum(a.token_ids == b.token_ids for a, b in zip(alone, batched, strict=True))
    assert identical >= 4, f"only {identical}/8 identical"
    for a, b in zip(alone, batched, strict=True):
        assert a.token_ids[:6] == b.token_ids[:6]


async def test_seed_gives_the_same_text_inside_different_batches(model_engine: AsyncEngine) -> None:
    """Each choice has its own RNG, so neighbours never shift its draws. The logits carry
    the batch-shape tolerance measured in the greedy test, so the check covers the first 8
    tokens, where no near-tie flipped in any measured run."""
    params = {"max_tokens": 24, "temperature": 0.9, "seed": 1234}
    prompt = story("a dragon")
    small = await generate_many(model_engine, [prompt, story("tea")], **params)
    large = await generate_many(model_engine, [prompt, *[story(t) for t in TOPICS[:5]]], **params)
    assert small[0].token_ids[:8] == large[0].token_ids[:8]
    other_seed = (await generate(model_engine, prompt, max_tokens=24, temperature=0.9, seed=99))[0]
    assert other_seed.token_ids != small[0].token_ids


def _token_spans(engine: AsyncEngine, token_ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    text, spans = "", []
    for t in token_ids:
        piece = engine.core.vocab.piece(t).decode()
        spans.append((len(text), len(text) + len(piece)))
        text += piece
    return text, spans


async def _greedy_reference(engine: AsyncEngine) -> tuple[str, list[tuple[int, int]]]:
    ref = (await generate(engine, story("a clock"), max_tokens=24, temperature=0))[0]
    return _token_spans(engine, ref.token_ids)


async def test_stop_string_ending_inside_a_token(model_engine: AsyncEngine) -> None:
    text, spans = await _greedy_reference(model_engine)
    start, _end = next((a, b) for a, b in spans[1:] if b - a >= 3 and text[a:b].isascii())
    stop = text[start : start + 2]
    assert text.find(stop) == start, "pick a stop string that first occurs here"
    out = (
        await generate(model_engine, story("a clock"), max_tokens=24, temperature=0, stop=[stop])
    )[0]
    assert out.text == text[:start]
    assert out.last.finish_reason is FinishReason.STOP


async def test_stop_string_spanning_two_tokens(model_engine: AsyncEngine) -> None:
    text, spans = await _greedy_reference(model_engine)
    boundary = next(
        b for (a, b), (c, d) in itertools.pairwise(spans[1:]) if b - a >= 2 and d - c >= 2
    )
    stop = text[boundary - 1 : boundary + 2]
    first = text.find(stop)
    out = (
        await generate(model_engine, story("a clock"), max_tokens=24, temperature=0, stop=[stop])
    )[0]
    assert out.text == text[:first]
    assert out.last.finish_reason is FinishReason.STOP


@pytest.mark.parametrize(
    ("regex", "lo", "hi", "split_expected"),
    [
        ("[ぁ-んァ-ン一-龯]{8,20}", 0x3041, 0x9FAF, False),  # Japanese: whole tokens
        ("[\U0001f300-\U0001faff]{4,12}", 0x1F300, 0x1FAFF, False),  # emoji
        # Linear B is not in Gemma's vocabulary: every character is four byte tokens.
        ("[\U00010000-\U0001007f]{3,6}", 0x10000, 0x1007F, True),
    ],
)
async def test_multibyte_output_is_never_split(
    model_engine: AsyncEngine, regex: str, lo: int, hi: int, split_expected: bool
) -> None:
    structured = StructuredOutput(regex=regex)
    out = (
        await generate(
            model_engine, chat("Say something."), max_tokens=40, seed=1, structured=structured
        )
    )[0]
    assert out.text and all(lo <= ord(ch) <= hi for ch in out.text), out.text
    # Every piece is complete characters in the range: a split character would show up as
    # U+FFFD or as a character outside it.
    for piece in out.pieces:
        assert "\ufffd" not in piece
        assert all(lo <= ord(ch) <= hi for ch in piece)
    held = sum(1 for o in out.outputs if o.tokens and not o.text)
    assert (held > 0) == split_expected


async def test_abort_frees_the_slot_and_the_kv(model_engine: AsyncEngine) -> None:
    core = model_engine.core
    request = GenerationRequest(
        "abort-me",
        model_engine.tokenize(story("a long road")),
        SamplingParams(max_tokens=500, temperature=0.7),
    )
    stream = model_engine.generate(request)
    got = [await stream.__anext__() for _ in range(3)]
    slot = next(s for s in core.scheduler.running if s.request_id == "abort-me").slot
    assert core.runner.seq_pos_min(slot) == 0
    await stream.aclose()
    for _ in range(200):
        if not any(s.request_id == "abort-me" for s in core.scheduler.running):
            break
        await asyncio.sleep(0.01)
    assert not any(s.request_id == "abort-me" for s in core.scheduler.running)
    assert core.runner.seq_pos_min(slot) == -1  # no cell left for that sequence
    assert len(got) == 3


async def test_cancelling_the_consumer_aborts_within_a_step(model_engine: AsyncEngine) -> None:
    request = GenerationRequest(
        "cancel-me", model_engine.tokenize(story("time")), SamplingParams(max_tokens=500)
    )

    async def consume() -> None:
        async with model_engine.generate(request) as stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if not any(s.request_id == "cancel-me" for s in model_engine.core.scheduler.running):
            return
        await asyncio.sleep(0.01)
    pytest.fail("the cancelled request is still running")


async def test_n_2_prefills_the_prompt_once(model_engine: AsyncEngine) -> None:
    prompt = chat("Name three colours of a rainbow, one per line, please.")
    before = model_engine.core.prompt_tokens_computed
    choices = await generate(model_engine, prompt, max_tokens=16, temperature=1.0, seed=5, n=2)
    prefilled = model_engine.core.prompt_tokens_computed - before
    n_prompt = len(model_engine.tokenize(prompt))
    assert len(choices) == 2
    assert prefilled == n_prompt - choices[0].last.cached_tokens
    assert choices[0].token_ids != choices[1].token_ids  # seeds seed and seed + 1
    assert all(c.last.completion_tokens > 0 for c in choices)


async def test_a_sequence_moved_into_a_slot_gap_continues_exactly(
    model_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a sequence below it finishes, ``SlotManager.compact`` copies a running
    sequence's KV into the lower slot mid-generation. Its greedy text must be the same as
    in the identical batch where it sat in the lower slot all along."""
    slots = model_engine.core.scheduler.slots
    moves: list[int] = []
    compact = slots.compact

    def recording_compact() -> list[tuple[object, int]]:
        done = compact()
        moves.extend(slot for _, slot in done)
        return done

    monkeypatch.setattr(slots, "compact", recording_compact)
    long, short = story("a moving van"), story("a parked car")
    for prompt in (long, short):  # both prompts cached, so both runs prefill alike
        await generate(model_engine, prompt, max_tokens=1, temperature=0)

    async def pair(first: str, second: str) -> dict[str, list[int]]:
        max_tokens = {long: 24, short: 2}
        done = await asyncio.gather(
            *(
                generate(model_engine, p, max_tokens=max_tokens[p], temperature=0)
                for p in (first, second)
            )
        )
        return {first: done[0][0].token_ids, second: done[1][0].token_ids}

    moves.clear()
    in_place = await pair(long, short)  # long in slot 0, short above it: nothing moves
    assert moves == []
    moved = await pair(short, long)  # short in slot 0 finishes; long moves 1 -> 0
    assert moves == [0]
    assert moved[long] == in_place[long]
    assert len(moved[long]) == 24


async def test_prefix_cache_hit_is_reported(model_engine: AsyncEngine) -> None:
    prompt = chat("Describe a cache hit in exactly one sentence, with an example.")
    n_prompt = len(model_engine.tokenize(prompt))
    await generate(model_engine, prompt, max_tokens=4, temperature=0)
    before = model_engine.core.prompt_tokens_computed
    second = (await generate(model_engine, prompt, max_tokens=4, temperature=0))[0]
    assert second.last.cached_tokens == n_prompt - 1
    assert model_engine.core.prompt_tokens_computed - before == 1


async def test_max_tokens_and_eos_finish_reasons(model_engine: AsyncEngine) -> None:
    out = (await generate(model_engine, story("a fox"), max_tokens=5, temperature=0))[0]
    assert out.last.finish_reason is FinishReason.LENGTH
    assert out.last.completion_tokens == 5
    forced = (
        await generate(model_engine, story("a fox"), max_tokens=12, temperature=0, ignore_eos=True)
    )[0]
    assert forced.last.completion_tokens == 12


async def test_context_overflow_is_refused_before_any_work(model_engine: AsyncEngine) -> None:
    request = GenerationRequest(
        "too-long", model_engine.tokenize("word " * 900), SamplingParams(max_tokens=500)
    )
    with pytest.raises(ContextLengthExceededError):
        model_engine.generate(request)


async def test_a_constraint_the_engine_cannot_express_is_a_clear_error(
    model_engine: AsyncEngine,
) -> None:
    spec = StructuredOutput(regex="(a)\\1")  # a backreference: no grammar can say it
    request = GenerationRequest(
        "bad-grammar", model_engine.tokenize("hi"), SamplingParams(structured=spec)
    )
    with pytest.raises(StructuredOutputError, match="backreferences"):
        model_engine.generate(request)


@pytest.mark.parametrize(
    "spec",
    [StructuredOutput(regex="(yes|no)"), StructuredOutput(choice=("yes", "no"))],
    ids=["regex", "choice"],
)
async def test_structured_output_constrains_the_output(
    model_engine: AsyncEngine, spec: StructuredOutput
) -> None:
    out = (
        await generate(
            model_engine, chat("Is the sky blue?"), max_tokens=8, structured=spec, seed=3
        )
    )[0]
    assert out.text in {"yes", "no"}
    assert out.last.finish_reason is FinishReason.STOP


async def test_full_queue_is_a_distinct_error(model_engine: AsyncEngine) -> None:
    params = SamplingParams(max_tokens=64)
    streams = []
    with pytest.raises(QueueFullError):
        for i in range(40):  # 16 slots + a queue of 8
            req = GenerationRequest(
                f"flood-{i}", model_engine.tokenize(story(f"flood {i}")), params
            )
            streams.append(model_engine.generate(req))
            await asyncio.sleep(0)
    for stream in streams:
        await stream.aclose()


def test_model_loads_and_decodes_a_batch_without_the_amx_crash() -> None:
    """Weight repacking sends batched matmuls to llama.cpp's AMX kernels, which die with
    SIGSEGV/SIGILL on these CPUs. Run a batched decode in a child so a crash fails here."""
    code = textwrap.dedent(
        """
        from tether.engines.llamacpp.gguf import default_model_path
        from tether.engines.llamacpp.runner import ModelRunner, RunnerConfig
        cfg = RunnerConfig(default_model_path(), 256, n_seq_max=4, n_batch=128, n_threads=2)
        r = ModelRunner(cfg)
        for seq in range(4):
            r.batch.add(r.vocab.tokenize("The quick brown fox " * 6), 0, seq, True)
        r.decode()
        print("decoded", r.batch.n_tokens)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert "decoded" in proc.stdout


def test_models_loaded_and_unloaded_one_after_another_do_not_crash() -> None:
    """A model unloaded right after it loaded (the pool's eviction) used to free the
    vocabulary that llguidance's tokenizer was still being read from in the background, and
    llama.cpp aborted the process. Two engines on one decode thread, in a child."""
    code = textwrap.dedent(
        """
        import asyncio
        from tether.engine.config import EngineConfig
        from tether.engines.llamacpp.async_engine import AsyncEngine
        from tether.engines.llamacpp.decode_thread import DecodeThread

        async def main():
            decoder = DecodeThread()
            for _ in range(3):
                engine = AsyncEngine(EngineConfig(ctx_size=256, max_seqs=2, threads=1), decoder)
                await engine.start()
                await engine.stop()
            print("loaded and unloaded 3 times")

        asyncio.run(main())
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert "3 times" in proc.stdout


async def test_prompt_logprobs_score_each_token_as_generation_did(
    model_engine: AsyncEngine,
) -> None:
    """Generate greedily, then score prompt + generated text as a prompt: each generated
    token's prompt logprob is the logprob it was sampled with. Prefill sums in a different
    order than one-token decode (batch-shape rounding, see ARCHITECTURE.md), so they agree
    to about 0.2 nats; a row read one position off is several nats away."""
    prompt = model_engine.tokenize("The history of computing is a story of people who")
    generated = [
        token
        for choice in await generate_ids(model_engine, prompt, max_tokens=12, temperature=0)
        for token in choice
    ]
    scored = GenerationRequest(
        "score",
        prompt + [t.id for t in generated],
        SamplingParams(max_tokens=1, temperature=0, prompt_logprobs=True),
    )
    async with model_engine.generate(scored) as stream:
        first = await anext(aiter(stream))

    logprobs = first.prompt_logprobs
    assert logprobs is not None and len(logprobs) == len(prompt) + len(generated)
    assert logprobs[0] is None
    assert all(lp is not None and lp <= 0 for lp in logprobs[1:])
    for token, lp in zip(generated, logprobs[len(prompt) :], strict=True):
        assert lp is not None and abs(lp - token.logprob) < 0.25, (token.id, token.logprob, lp)


async def test_no_prompt_logprobs_unless_asked(model_engine: AsyncEngine) -> None:
    request = GenerationRequest("plain", model_engine.tokenize("Hello there"), SamplingParams())
    async with model_engine.generate(request) as stream:
        outputs = [out async for out in stream]
    assert outputs and all(out.prompt_logprobs is None for out in outputs)


async def generate_ids(
    engine: AsyncEngine, prompt: list[int], **params: object
) -> list[list[TokenInfo]]:
    """Each choice's sampled tokens (special ones left out), from prompt token ids."""
    request = GenerationRequest("ids", prompt, SamplingParams(**params))  # type: ignore[arg-type]
    tokens: dict[int, list[TokenInfo]] = {}
    async with engine.generate(request) as stream:
        async for out in stream:
            tokens.setdefault(out.index, []).extend(t for t in out.tokens if not t.special)
    return [tokens[index] for index in sorted(tokens)]
