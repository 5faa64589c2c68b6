"""A non-streaming request's results: each choice gathered from its outputs, usage over all
choices, and the echoed prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.api.metrics import RequestTimer
from tether.api.pipeline.context import ServingContext
from tether.api.wire import objects, requests
from tether.engine.base import RequestStream
from tether.engine.request import FinishReason, TokenInfo


def echo_prompt(
    ctx: ServingContext,
    req: requests.SamplingRequest,
    text: str,
    prompt_ids: list[int],
    results: list[ChoiceResult],
) -> list[dict[str, Any]]:
    """The response's ``prompt``: the templated prompt with ``echo`` (and, with logprobs,
    each prompt token's logprob, scored by the engine), else empty."""
    if not req.echo:
        return []
    logprobs = None
    if req.top_logprobs_count is not None:
        texts = [ctx.engine.token_text(token_id) for token_id in prompt_ids]
        scores = results[0].prompt_logprobs if results else None
        logprobs = objects.prompt_logprobs_object(texts, prompt_ids, scores)
    return [objects.prompt_part(text, logprobs)]


@dataclass(slots=True)
class ChoiceResult:
    """One choice of a non-streaming request, gathered from its outputs."""

    index: int
    pieces: list[str] = field(default_factory=list)
    piece_tokens: list[int] = field(default_factory=list)  # how many tokens each piece took
    tokens: list[TokenInfo] = field(default_factory=list)
    finish_reason: FinishReason = FinishReason.STOP
    seed: int | None = None
    prompt_logprobs: list[float | None] | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def outputs(self) -> zip[tuple[str, int]]:
        """``(text, tokens)`` for each output, in order."""
        return zip(self.pieces, self.piece_tokens, strict=True)

    @property
    def logprob_tokens(self) -> list[TokenInfo]:
        # EOS and other special tokens carry no text of the answer.
        return [token for token in self.tokens if not token.special]


class UsageTally:
    """Usage over all ``n`` choices: prompt once, completions summed."""

    def __init__(self, n: int) -> None:
        self._pending = n
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_tokens = 0
        self.reasoning_tokens: int | None = None  # counted for a reasoning model's request

    def add_reasoning(self, tokens: int) -> None:
        self.reasoning_tokens = (self.reasoning_tokens or 0) + tokens

    def add_finished(self, prompt_tokens: int, completion_tokens: int, cached: int) -> None:
        self._pending -= 1
        self.prompt_tokens = prompt_tokens
        self.completion_tokens += completion_tokens
        self.cached_tokens = max(self.cached_tokens, cached)

    @property
    def complete(self) -> bool:
        return self._pending <= 0

    def wire(self) -> objects.Usage:
        return objects.usage(
            self.prompt_tokens, self.completion_tokens, self.cached_tokens, self.reasoning_tokens
        )


async def collect(
    stream: RequestStream, n: int, timer: RequestTimer, *, keep_tokens: bool
) -> tuple[list[ChoiceResult], UsageTally]:
    """Run a request to the end and gather every choice."""
    results = [ChoiceResult(index) for index in range(n)]
    tally = UsageTally(n)
    async with stream:
        async for out in stream:
            timer.on_output(out)
            result = results[out.index]
            if out.prompt_logprobs is not None and result.prompt_logprobs is None:
                result.prompt_logprobs = out.prompt_logprobs
            if out.text or out.tokens:
                result.pieces.append(out.text)
                result.piece_tokens.append(len(out.tokens))
            if keep_tokens:
                result.tokens.extend(out.tokens)
            if out.finish_reason is not None:
                result.finish_reason = out.finish_reason
                result.seed = out.seed
                tally.add_finished(out.prompt_tokens, out.completion_tokens, out.cached_tokens)
    timer.finish()
    return results, tally
