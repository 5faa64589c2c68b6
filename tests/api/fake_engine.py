"""A scripted ``Engine`` for API tests: no model, deterministic outputs, recorded calls.

Tokens are characters: ``tokenize`` maps each character to its code point (after a BOS of
id 2), and an output piece ``"Hello"`` is one ``StepOutput`` carrying five tokens. Scripts
are chosen by a substring of the prompt text; each can delay, stall before its first output,
end by EOS (``stop``) or by length, or raise part-way. Aborts and requests are recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.chat.call_ids import CallIds
from tether.chat.messages import Function, Message
from tether.chat.reasoning import ReasoningMarkers
from tether.engine.errors import ContextLengthExceededError, EngineError
from tether.engine.request import (
    EngineStats,
    FinishReason,
    GenerationRequest,
    StepOutput,
    TokenInfo,
    TopLogprob,
)
from tether.engine.sampling_params import SamplingDefaults

BOS_ID = 2
EOS_ID = 1
LOGPROB = -0.5
MODEL_ID = "google/gemma-3-270m"


@dataclass
class Script:
    """What the fake model answers (the same for every choice of a request)."""

    pieces: list[str]
    finish: FinishReason = FinishReason.STOP
    first_delay_s: float = 0.0  # queue wait / prefill before the first output
    delay_s: float = 0.0  # between outputs
    fail_after: int | None = None  # raise after this many outputs
    seed: int = 42
    queue_time_s: float = 0.01


@dataclass
class FakeEngine:
    context_length: int = 256
    model_id: str = MODEL_ID
    ready: bool = True
    default: Script = field(default_factory=lambda: Script(["Hello", " world", "!"]))
    scripts: list[tuple[str, Script]] = field(default_factory=list)
    generate_error: Exception | None = None
    waiting: int = 0
    requests: list[GenerationRequest] = field(default_factory=list)
    templates: list[tuple[list[Message], list[Function]]] = field(default_factory=list)
    variables: list[dict[str, Any]] = field(default_factory=list)
    # Set: the renderer is a reasoning model's, opening ``<think>`` unless told not to.
    reasoning_markers: ReasoningMarkers | None = None
    # The renderer's tool-call format (a ``tether.chat.tool_parsers`` name) and id shape.
    tool_parser: str = "tether"
    call_ids: CallIds = field(default_factory=CallIds)
    sampling_defaults: SamplingDefaults = field(default_factory=SamplingDefaults)
    always_opens: bool = False  # like DeepSeek R1's template: opens it whatever it is told
    aborted: list[str] = field(default_factory=list)
    streams: list[FakeStream] = field(default_factory=list)
    ended_by: EngineError | None = None

    def script(self, key: str, script: Script) -> None:
        """Answer prompts containing ``key`` with ``script``."""
        self.scripts.append((key, script))

    # --- the Engine protocol -----------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return ([BOS_ID] if add_special else []) + [ord(char) for char in text]

    def token_text(self, token_id: int) -> str:
        return "" if token_id in (BOS_ID, EOS_ID) else chr(token_id)

    chat_template: str | None = None  # the Engine protocol's; the API tests pass ``render``

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[Function],
        variables: Mapping[str, Any],
    ) -> str:
        """A recording chat renderer (``create_app(..., chat=engine)``): ``<role>content``;
        with ``reasoning_markers``, the assistant's turn opens reasoning unless
        ``enable_thinking`` is false."""
        self.templates.append((list(messages), list(tools)))
        self.variables.append(dict(variables))
        turns = "".join(f"<{m.role}>{m.content or ''}" for m in messages)
        opening = "<assistant>"
        thinking = self.always_opens or variables.get("enable_thinking", True)
        if self.reasoning_markers is not None and thinking:
            opening += self.reasoning_markers.start + "\n"
        return f"{turns}{opening}"

    def generate(self, request: GenerationRequest) -> FakeStream:
        self.requests.append(request)
        if self.generate_error is not None:
            raise self.generate_error
        if self.ended_by is not None:
            raise self.ended_by
        prompt_tokens = len(request.prompt_token_ids)
        if prompt_tokens + request.params.max_tokens > self.context_length:
            raise ContextLengthExceededError(
                prompt_tokens, request.params.max_tokens, self.context_length
            )
        stream = FakeStream(self, request, self._script_for(request))
        self.streams.append(stream)
        return stream

    def stats(self) -> EngineStats:
        running = sum(1 for stream in self.streams if not stream.closed)
        return EngineStats(running=running, waiting=self.waiting)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    def end_all(self, error: EngineError) -> None:
        self.ended_by = error

    # --- scripting ---------------------------------------------------------------------------

    def _script_for(self, request: GenerationRequest) -> Script:
        prompt = "".join(self.token_text(token_id) for token_id in request.prompt_token_ids)
        for key, script in self.scripts:
            if key in prompt:
                return script
        return self.default


def _token(char: str, top: int | None) -> TokenInfo:
    alternatives = None
    if top is not None:
        alternatives = tuple(
            TopLogprob(ord(char) + k, chr(ord(char) + k), LOGPROB - k) for k in range(top)
        )
    return TokenInfo(ord(char), char, LOGPROB, False, alternatives)


def script_outputs(request: GenerationRequest, script: Script) -> list[StepOutput]:
    """Every output of the request, choices interleaved step by step."""
    params = request.params
    prompt_tokens = len(request.prompt_token_ids)
    per_choice: list[list[StepOutput]] = []
    for index in range(params.n):
        outputs, count = [], 0
        for piece in script.pieces:
            tokens = [_token(char, params.logprobs) for char in piece]
            count += len(tokens)
            outputs.append(
                StepOutput(
                    request.request_id,
                    index,
                    tokens,
                    piece,
                    None,
                    prompt_tokens,
                    count,
                    0,
                    script.seed,
                    script.queue_time_s,
                )
            )
        if script.finish is FinishReason.LENGTH:
            outputs[-1].finish_reason = FinishReason.LENGTH
        else:
            eos = TokenInfo(EOS_ID, "", -0.1, True)
            outputs.append(
                StepOutput(
                    request.request_id,
                    index,
                    [eos],
                    "",
                    FinishReason.STOP,
                    prompt_tokens,
                    count + 1,
                    0,
                    script.seed,
                    script.queue_time_s,
                )
            )
        per_choice.append(outputs)
    return [out for step in zip(*per_choice, strict=True) for out in step]


class FakeStream:
    """A ``RequestStream`` over scripted outputs; closing it early aborts the request."""

    def __init__(self, engine: FakeEngine, request: GenerationRequest, script: Script) -> None:
        self._engine = engine
        self._script = script
        self._outputs = script_outputs(request, script)
        self._sent = 0
        self.request_id = request.request_id
        self.closed = False
        self.exhausted = False

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> StepOutput:
        delay = self._script.first_delay_s if self._sent == 0 else self._script.delay_s
        if delay:
            await asyncio.sleep(delay)
        if self._engine.ended_by is not None and not self.exhausted:
            self.exhausted = True
            raise self._engine.ended_by
        if self._script.fail_after is not None and self._sent >= self._script.fail_after:
            raise RuntimeError("fake engine failure (internal detail that must not leak)")
        if self._sent >= len(self._outputs):
            self.exhausted = True
            raise StopAsyncIteration
        self._sent += 1
        return self._outputs[self._sent - 1]

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.exhausted:
            await self._engine.abort(self.request_id)

    async def __aenter__(self) -> FakeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
