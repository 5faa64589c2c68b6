"""Speculative decoding on the real model (issue 21): drafted tokens are verified by the
sequence's own sampler, so what a client gets is what it gets without them.

``drafting`` drafts (``--speculative ngram``, the default); ``plain`` is the same engine
with speculation off. Both start fresh and get the same requests in the same order. Their
logits differ by floating-point rounding only: llama.cpp's CPU kernels sum in another order
when a step carries several positions, whether of one sequence (its drafts) or of several
(batching), or when a prompt reuses a cached prefix computed in another batch. On this
model that moves a logprob by up to about 0.36 nats: a greedy answer alone and the same
answer beside another stream, both without speculation, part at the very tokens and gaps
(0.05-0.28) where the answer with speculation parts from the one without. So greedy
answers are compared token for token and, where they part, the reference's two best tokens
must have been that close (a tie within rounding), never further apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator

import pytest

from tests.engines.llamacpp.helpers import Choice, chat, generate
from tether.engine.config import EngineConfig
from tether.engine.request import FinishReason
from tether.engine.structured import StructuredOutput
from tether.engines.llamacpp.async_engine import AsyncEngine
from tether.engines.llamacpp.lookup import PromptLookup

# A logprob gap rounding can bridge on this model (0.36 the largest difference measured).
ROUNDING = 0.4

REPORT = (
    "Quarterly report. Revenue grew by 12 percent to 4.2 million dollars. The team shipped "
    "three releases: version 2.1 in January, version 2.2 in March and version 2.3 in May. "
    "Customer support answered 1,204 tickets with a median first reply of 3 hours. Alice "
    "Martin led the infrastructure work, Bob Chen led the mobile app, and Carol Diaz led "
    "sales. Next quarter the team plans to hire two engineers and open an office in Lyon."
)
QUOTE = chat(f"Repeat this text word for word, with every name changed to Sam:\n\n{REPORT}")
LONG_QUOTE = chat("Repeat this text word for word:\n\n" + " ".join([REPORT] * 6))
FREE = [
    chat("Write a poem about the sea."),
    chat("Explain how a bicycle works."),
    "Once upon a time",
]


def _engine(speculative: str) -> Iterator[AsyncEngine]:
    config = EngineConfig(
        ctx_size=1024, max_seqs=16, batch_tokens=256, max_queue=8, speculative=speculative
    )
    engine = AsyncEngine(config)
    engine.load()
    engine.start_thread()
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def plain() -> Iterator[AsyncEngine]:
    yield from _engine("off")


@pytest.fixture(scope="module")
def drafting() -> Iterator[AsyncEngine]:
    yield from _engine("ngram")


def assert_same_greedy(
    reference: Choice, drafted: Choice, shift: Callable[[int, list[int]], float] | None = None
) -> None:
    """The same tokens, except after a tie within rounding (see the module docstring).
    ``shift(token, earlier)``: what a bias or additive penalty took off a token's logit
    after the ``earlier`` generated tokens, when the sampler chose from shifted logits: the
    tie is then judged between the two tokens chosen, as the sampler saw them."""
    ref, got = reference.token_ids, drafted.token_ids
    parted = next((i for i, (a, b) in enumerate(zip(ref, got, strict=False)) if a != b), None)
    if parted is None:
        assert len(ref) == len(got), (len(ref), len(got))
        return
    tokens = [t for out in reference.outputs for t in out.tokens]
    best = tokens[parted].top_logprobs
    assert best is not None and len(best) >= 2, "compare with logprobs=2"
    gap = best[0].logprob - best[1].logprob
    if shift is not None:
        raw = {alt.token_id: alt.logprob for alt in best}
        assert got[parted] in raw, "compare with more logprobs"
        earlier = ref[:parted]
        gap = (raw[ref[parted]] - shift(ref[parted], earlier)) - (
            raw[got[parted]] - shift(got[parted], earlier)
        )
    assert gap < ROUNDING, f"parted at token {parted}, where the reference led by {gap:.3f}"


def drafted_since(engine: AsyncEngine, before: tuple[int, int]) -> tuple[int, int]:
    counts = engine.stats().speculation
    return counts.draft_tokens - before[0], counts.accepted_tokens - before[1]


def counts(engine: AsyncEngine) -> tuple[int, int]:
    spec = engine.stats().speculation
    return spec.draft_tokens, spec.accepted_tokens


async def both(
    plain: AsyncEngine, drafting: AsyncEngine, prompt: str, **params: object
) -> tuple[list[Choice], list[Choice]]:
    return await generate(plain, prompt, **params), await generate(drafting, prompt, **params)


async def test_an_answer_that_quotes_its_prompt_is_drafted_and_unchanged(
    plain: AsyncEngine, drafting: AsyncEngine
) -> None:
    before = counts(drafting)
    (ref,), (got,) = await both(plain, drafting, QUOTE, max_tokens=120, logprobs=2, temperature=0)
    drafted, accepted = drafted_since(drafting, before)
    assert accepted >= 40, (drafted, accepted)  # most of the answer came from drafts
    assert_same_greedy(ref, got)
    assert got.text == ref.text or len(got.text) > 100


async def test_answers_that_do_not_quote_are_unchanged(
    plain: AsyncEngine, drafting: AsyncEngine
) -> None:
    for prompt in FREE:
        (ref,), (got,) = await both(
            plain, drafting, prompt, max_tokens=100, logprobs=2, temperature=0
        )
        assert_same_greedy(ref, got)


async def test_every_token_is_its_own_output_with_its_own_logprob(
    plain: AsyncEngine, drafting: AsyncEngine
) -> None:
    (ref,), (got,) = await both(plain, drafting, QUOTE, max_tokens=80, logprobs=3, temperature=0)
    assert_same_greedy(ref, got)
    assert all(len(out.tokens) <= 1 for out in got.outputs)
    tokens = [t for out in got.outputs for t in out.tokens]
    assert len(tokens) == 80
    for token in tokens:
        # Greedy: the token is the best of the row it was verified against, and its
        # logprob is that row's, not a placeholder (llama-server reports 1.0 here).
        assert token.top_logprobs is not None
        assert token.top_logprobs[0].token_id == token.id
        assert token.logprob == pytest.approx(token.top_logprobs[0].logprob)
    reference = [t for o in ref.outputs for t in o.tokens]
    parted = next(
        (i for i, (a, b) in enumerate(zip(reference, tokens, strict=True)) if a.id != b.id), 80
    )
    pairs = list(zip(reference[:parted], tokens[:parted], strict=True))
    assert max(abs(a.logprob - b.logprob) for a, b in pairs) < ROUNDING
    assert any(b.logprob < -0.01 for _, b in pairs)  # real probabilities, not 1.0 each


async def test_n_choices_draft_each_on_their_own(plain: AsyncEngine, drafting: AsyncEngine) -> None:
    before = counts(drafting)
    refs, gots = await both(plain, drafting, QUOTE, max_tokens=60, n=2, logprobs=2, temperature=0)
    assert drafted_since(drafting, before)[1] > 0
    assert len(gots) == 2
    for ref, got in zip(refs, gots, strict=True):
        assert_same_greedy(ref, got)


async def test_a_stop_string_inside_an_accepted_run_ends_the_answer_there(
    plain: AsyncEngine, drafting: AsyncEngine
) -> None:
    (ref,), _ = await both(plain, drafting, QUOTE, max_tokens=120, temperature=0)
    stop = ref.text[150:162]  # well inside the copied text
    assert len(stop) == 12
    before = counts(drafting)
    (a,), (b,) = await both(
        plain, drafting, QUOTE, max_tokens=120, temperature=0, logprobs=2, stop=(stop,)
    )
    assert drafted_since(drafting, before)[1] > 0
    assert_same_greedy(a, b)
    assert stop not in b.text and len(b.text) >= 140
    assert b.last.finish_reason is FinishReason.STOP
    # The answer ended inside a drafted run: what its slot keeps for the prefix cache is
    # its tokens and nothing drafted after them. The conversation goes on from there.
    (c,), (d,) = await both(
        plain, drafting, QUOTE + b.text + stop, max_tokens=60, temperature=0, logprobs=2
    )
    assert d.last.cached_tokens > len(drafting.tokenize(QUOTE))
    assert_same_greedy(c, d)


async def test_max_tokens_reached_inside_an_accepted_run(
    plain: AsyncEngine, drafting: AsyncEngine
) -> None:
    for max_tokens in (1, 2, 37):
        (ref,), (got,) = await both(
            plain, drafting, QUOTE, max_tokens=max_tokens, logprobs=2, temperature=0
        )
        assert len(got.token_ids) == max_tokens
        assert got.last.completion_tokens == max_tokens
        assert got.last.finish_reason is FinishReason.LENGTH
        assert_same_greedy(ref, got)


async def test_a_grammar_holds_on_drafted_tokens(plain: AsyncEngine, drafting: AsyncEngine) -> None:
    schema = {
        "type": "object",
        "properties": {"report": {"type": "string", "maxLength": 400}},
        "required": ["report"],
    }
    prompt = f'Record:\n{{"report": "{REPORT}"}}\nThe same record again:\n'
    spec = StructuredOutput(json_schema=schema)
    before = counts(drafting)
    (ref,), (got,) = await both(
        plain, drafting, prompt, max_tokens=150, logprobs=2, temperature=0, structured=spec
    )
    assert drafted_since(drafting, before)[1] > 0
    assert_same_greedy(ref, got)
    assert got.last.finish_reason is FinishReason.STOP
    assert len(json.loads(got.text)["report"]) <= 400  # the grammar cut the copy short


async def test_logit_bias_and_penalties_apply_to_drafted_positions(
    plain: AsyncEngine, drafting: AsyncEngine
) -> None:
    (free,), _ = await both(plain, drafting, QUOTE, max_tokens=40, temperature=0)
    banned = free.token_ids[10]  # a token the plain answer copies

    def bias(token: int, earlier: list[int]) -> float:
        return 100.0 if token == banned else 0.0

    def frequency_presence(token: int, earlier: list[int]) -> float:
        count = earlier.count(token)
        return 0.5 * count + (0.3 if count else 0.0)

    shifted: list[tuple[dict[str, object], Callable[[int, list[int]], float]]] = [
        ({"logit_bias": {banned: -100.0}}, bias),
        ({"frequency_penalty": 0.5, "presence_penalty": 0.3}, frequency_presence),
    ]
    for params, shift in shifted:
        (ref,), (got,) = await both(
            plain, drafting, QUOTE, max_tokens=60, logprobs=20, temperature=0, **params
        )
        assert_same_greedy(ref, got, shift)
        assert got.token_ids != free.token_ids[: len(got.token_ids)]  # it took effect
    (ref,), (got,) = await both(
        plain,
        drafting,
        QUOTE,
        max_tokens=60,
        logprobs=2,
        temperature=0,
        logit_bias={banned: -100.0},
    )
    assert banned not in got.token_ids
    # A repetition penalty divides or multiplies logits, so the logprobs cannot show how
    # close its choices were: this prompt reaches such a tie at token 41 (where plain
    # decoding alone and beside another stream part too), and is compared before it.
    (ref,), (got,) = await both(
        plain, drafting, QUOTE, max_tokens=40, logprobs=2, temperature=0, repetition_penalty=1.3
    )
    assert got.token_ids == ref.token_ids
    assert got.token_ids != free.token_ids


async def test_a_seed_gives_the_same_sample_every_time(
    plain: AsyncEngine, drafting: AsyncEngine
) -> None:
    """Verification samples each position once, with the sequence's own random stream, as
    plain decoding does: a seed gives the same answer again, and the same answer as
    without speculation (150 seeds out of 150 when measured; ties within rounding aside)."""
    texts = set()
    for _ in range(3):
        (a,), (b,) = await both(plain, drafting, QUOTE, max_tokens=60, temperature=0.8, seed=11)
        texts.add(b.text)
    assert len(texts) == 1
    same = 0
    for seed in range(10):
        (a,), (b,) = await both(plain, drafting, QUOTE, max_tokens=24, temperature=0.8, seed=seed)
        same += a.token_ids == b.token_ids
    assert same >= 9


async def test_sampling_keeps_its_distribution(plain: AsyncEngine, drafting: AsyncEngine) -> None:
    """Sampling over a quoted text, where drafts are often right (the copy) and often
    wrong. A verifier that favoured its drafts would make answers copy more; so each
    answer's share of tokens that are what prompt lookup would have drafted there must have
    the same mean on both engines, within sampling error. Different seeds on each engine:
    two independent samples."""
    prompt = drafting.tokenize(QUOTE)

    async def copied(engine: AsyncEngine, seed: int) -> float:
        (choice,) = await generate(engine, QUOTE, max_tokens=24, temperature=0.8, seed=seed)
        tokens, lookup, agree = prompt + choice.token_ids, PromptLookup(), 0
        for position in range(len(prompt), len(tokens)):
            draft, _ = lookup.propose(tokens[:position], 1)
            agree += draft == [tokens[position]]
        return agree / len(choice.token_ids)

    before = counts(drafting)
    a = [await copied(plain, seed) for seed in range(32)]
    b = [await copied(drafting, seed) for seed in range(1000, 1032)]
    drafted, accepted = drafted_since(drafting, before)
    assert accepted > 50 and drafted - accepted > 10, (drafted, accepted)  # right and wrong
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    var = sum((x - mean_a) ** 2 for x in a) / len(a) + sum((x - mean_b) ** 2 for x in b) / len(b)
    error = math.sqrt(var / len(a))
    assert 0.2 < mean_a < 0.95  # the copy is likely, not certain
    assert abs(mean_a - mean_b) < 4 * error, (mean_a, mean_b, error)


async def test_rollbacks_past_the_sliding_window_keep_the_answer(
    plain: AsyncEngine, drafting: AsyncEngine
) -> None:
    """Gemma 3 attends over a 512-token window in most layers, in a cache that keeps only
    that window: a prompt longer than it, and drafts taken back, must not lose any cell the
    next position needs."""
    assert drafting.core.runner.n_swa == 512
    prompt_tokens = len(drafting.tokenize(LONG_QUOTE))
    assert prompt_tokens > 600
    before = counts(drafting)
    (ref,), (got,) = await both(
        plain, drafting, LONG_QUOTE, max_tokens=200, logprobs=2, temperature=0
    )
    drafted, accepted = drafted_since(drafting, before)
    assert accepted > 50 and drafted > accepted, (drafted, accepted)  # some were taken back
    assert_same_greedy(ref, got)
