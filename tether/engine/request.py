"""What the engine is asked to do (``GenerationRequest``) and what it answers (``StepOutput``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tether.engine.sampling_params import SamplingParams


class FinishReason(enum.StrEnum):
    """Why a choice stopped; the value is the wire string."""

    STOP = "stop"  # EOS or a stop string
    LENGTH = "length"  # max_tokens reached
    TOOL_CALLS = "tool_calls"  # set by the API layer, never by the engine


@dataclass(frozen=True, slots=True)
class TopLogprob:
    """One alternative at a sampled position."""

    token_id: int
    text: str
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """One sampled token: raw id, its own text piece, its log-probability under the model."""

    id: int
    text: str
    logprob: float
    special: bool
    top_logprobs: tuple[TopLogprob, ...] | None = None


@dataclass(frozen=True, slots=True)
class StepTiming:
    """Totals over the engine's decode-only steps (no prompt chunk in the batch): how many,
    their wall time from schedule to outputs, and the part of it inside the kernels. At
    one stream a decode step makes one token, so ``step_s / steps`` is the engine's time
    per token and ``(step_s - kernel_s) / steps`` its Python per token (issue 13)."""

    steps: int = 0
    step_s: float = 0.0
    kernel_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SpecCounts:
    """Speculative decoding so far: verifications (a sequence's drafted tokens checked in
    one step), tokens drafted, and tokens of them accepted (vLLM's ``spec_decode`` counters)."""

    drafts: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot for metrics: sequences decoding now, requests waiting for a slot, the C
    sampler objects alive (a leak shows up as a count that only grows), step timing and
    speculative decoding counts (engines that do not measure them report zeros)."""

    running: int
    waiting: int
    live_samplers: int = 0
    decode_steps: StepTiming = StepTiming()
    speculation: SpecCounts = SpecCounts()


@dataclass(slots=True)
class GenerationRequest:
    """Prompt token ids plus validated sampling parameters.

    ``request_id`` is unique among live requests; ``abort(request_id)`` refers to it.
    """

    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams = field(default_factory=SamplingParams)


@dataclass(slots=True)
class StepOutput:
    """What one engine step produced for one choice of one request.

    ``tokens`` are the tokens sampled since the previous output for this choice, and
    ``text`` is the text they released after UTF-8 and stop-string hold-back (it can be
    empty while text is held back, and can carry text of earlier tokens). The last output
    of a choice has ``finish_reason`` set. Counts are totals so far for this choice.
    """

    request_id: str
    index: int
    tokens: list[TokenInfo]
    text: str
    finish_reason: FinishReason | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    seed: int
    queue_time_s: float = 0.0  # from enqueue to first scheduled step
    # With ``params.prompt_logprobs``, on a choice's first output: one per prompt token, the
    # first ``None`` (nothing comes before it).
    prompt_logprobs: list[float | None] | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None
