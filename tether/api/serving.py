"""Steps every generation endpoint shares: body → request → prompt ids → sampling → results.

The endpoint modules (``chat``, ``completions``, ``inference``) compose these; everything
that raises here does so before any streaming starts, so the client gets a real status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Receive

from tether.api import requests, responses
from tether.api.body import parse_body, read_body
from tether.api.errors import (
    ClientDisconnected,
    InvalidRequest,
    Overloaded,
)
from tether.api.metrics import Metrics, RequestTimer
from tether.api.middleware import add_response_headers, request_id
from tether.api.models import ModelCatalog
from tether.api.rate_limit import RateLimiter
from tether.chat.call_ids import CallIds
from tether.chat.messages import Function, Message
from tether.chat.reasoning import Reasoning, ReasoningMarkers
from tether.chat.template import ChatTemplate, ChatTemplateError
from tether.config import ServerConfig
from tether.engine.base import Engine, RequestStream
from tether.engine.errors import ContextLengthExceededError, StructuredOutputError
from tether.engine.request import FinishReason, GenerationRequest, TokenInfo
from tether.engine.sampling_params import SamplingDefaults, SamplingParams
from tether.engine.structured import StructuredOutput

# ``max_tokens`` when the request has none: what remains of the context, at most this much.
# With a large ``--ctx-size`` the whole remainder would let one runaway request hold a
# sequence slot for tens of thousands of CPU decode steps; 4096 is still more than any
# ordinary answer, and a client may ask for more explicitly.
DEFAULT_MAX_TOKENS = 4096
# Tokenizing or templating more text than this runs in a thread, off the event loop that
# streams every other request's tokens.
INLINE_TEXT_CHARS = 16_384


@dataclass(frozen=True, slots=True)
class ServingContext:
    """What every endpoint needs; built once by ``create_app``."""

    engine: Engine
    config: ServerConfig
    models: ModelCatalog
    metrics: Metrics
    limiter: RateLimiter
    chat: ChatRenderer


class ChatRenderer(Protocol):
    """Renders chat messages into prompt text, and says which formats the model writes calls
    and reasoning in (``tether.chat.template.ChatTemplate``)."""

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[Function],
        variables: Mapping[str, Any],
    ) -> str: ...

    @property
    def reasoning_markers(self) -> ReasoningMarkers | None: ...

    @property
    def tool_parser(self) -> str: ...

    @property
    def call_ids(self) -> CallIds: ...


class EngineChatTemplate:
    """The chat template in force (``ServerConfig.chat_template_for``): ``--chat-template``'s,
    else the served model's own (or Gemma's format when it has none), read from the engine
    once it has loaded."""

    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self._engine = engine
        self._config = config
        self._template: ChatTemplate | None = None

    @property
    def template(self) -> ChatTemplate:
        if self._template is None:
            self._template = self._config.chat_template_for(self._engine.chat_template)
        return self._template

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[Function],
        variables: Mapping[str, Any],
    ) -> str:
        return self.template.render(messages, tools, variables)

    @property
    def reasoning_markers(self) -> ReasoningMarkers | None:
        return self.template.reasoning_markers

    @property
    def tool_parser(self) -> str:
        return self.template.tool_parser

    @property
    def call_ids(self) -> CallIds:
        return self.template.call_ids


T = TypeVar("T")


def require_ready(engine: Engine) -> None:
    """503 while the model loads (or after the engine died): the SDKs retry 503 on their own."""
    if not engine.ready:
        raise Overloaded("The model is not ready yet; retry later.")


ApiRequestT = TypeVar("ApiRequestT", bound=requests.ModelRequest)


class Accepted(NamedTuple, Generic[ApiRequestT]):
    """A request past the checks every endpoint makes before any generation."""

    timer: RequestTimer
    request_id: str
    body: ApiRequestT
    model: str


async def accept(
    ctx: ServingContext, request: Request, schema: type[ApiRequestT]
) -> Accepted[ApiRequestT]:
    """Start timing, apply the rate limits, read and parse the body, resolve the model, and
    check readiness."""
    timer = ctx.metrics.timer()
    rid = request_id(request)
    admission = ctx.limiter.admit(request)  # 429 before the body is even read
    add_response_headers(request, admission.headers)
    timer.charge = admission.charge
    body = parse_body(schema, await read_body(request, ctx.config.max_body_bytes))
    model = ctx.models.resolve(body.model)
    require_ready(ctx.engine)
    return Accepted(timer, rid, body, model)


class ChatPrompt(NamedTuple):
    text: str
    ids: list[int]
    reasoning: Reasoning | None  # set when the template is a reasoning model's


async def render_chat_prompt(
    ctx: ServingContext,
    messages: list[Message],
    tools: Sequence[Function],
    body: requests.ChatCompletionRequest,
) -> ChatPrompt:
    """Chat template, then token ids (BOS added by the tokenizer)."""
    size = sum(len(message.content or "") + len(message.reasoning or "") for message in messages)
    return await _off_loop_if_long(size, _template_and_tokenize, ctx, messages, tools, body)


def _template_and_tokenize(
    ctx: ServingContext,
    messages: list[Message],
    tools: Sequence[Function],
    body: requests.ChatCompletionRequest,
) -> ChatPrompt:
    try:
        text = ctx.chat.render(messages, tools, body.template_variables())
    except ChatTemplateError as exc:
        raise InvalidRequest(f"messages: {exc}", "messages") from exc
    reasoning = None
    markers = ctx.chat.reasoning_markers
    if markers is not None:
        reasoning, text = Reasoning.for_prompt(markers, text, body.reasoning_enabled)
    return ChatPrompt(text, ctx.engine.tokenize(text, add_special=True), reasoning)


async def tokenize_prompt(engine: Engine, text: str) -> list[int]:
    return await _off_loop_if_long(len(text), engine.tokenize, text, add_special=True)


async def _off_loop_if_long(size: int, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Short texts are tokenized inline; long ones in a worker thread, off the event loop."""
    if size < INLINE_TEXT_CHARS:
        return func(*args, **kwargs)
    return await run_in_threadpool(func, *args, **kwargs)


def resolve_max_tokens(req: requests.SamplingRequest, prompt_tokens: int, context: int) -> int:
    """``max_tokens`` that fits, honouring ``context_length_exceeded_behavior``."""
    remaining = context - prompt_tokens
    if remaining < 1:
        raise ContextLengthExceededError(prompt_tokens, req.max_tokens or 1, context)
    if req.max_tokens is None:
        return min(remaining, DEFAULT_MAX_TOKENS)
    if req.max_tokens <= remaining:
        return req.max_tokens
    if req.context_length_exceeded_behavior == "truncate":
        return remaining
    raise ContextLengthExceededError(prompt_tokens, req.max_tokens, context)


@dataclass(frozen=True, slots=True)
class Constraint:
    """A request's output constraint and the request field it came from (named in a 400)."""

    spec: StructuredOutput
    field: str


def response_format_constraint(fmt: requests.ResponseFormat | None) -> Constraint | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "regex":
        if not fmt.pattern:
            raise InvalidRequest("response_format: regex needs a 'pattern'", "response_format")
        return Constraint(StructuredOutput(regex=fmt.pattern), "response_format")
    schema = fmt.schema_dict
    if schema is not None:
        return Constraint(StructuredOutput(json_schema=schema), "response_format")
    if fmt.type == "json_schema":
        raise InvalidRequest(
            "response_format: json_schema needs 'json_schema.schema'", "response_format"
        )
    return Constraint(StructuredOutput.json_object(), "response_format")


def sampling_params(
    req: requests.SamplingRequest,
    *,
    max_tokens: int,
    structured: StructuredOutput | None,
    defaults: SamplingDefaults,
    keep_special: tuple[str, ...] = (),
) -> SamplingParams:
    """Absent fields take the server's ``defaults``; ``SamplingParams`` validates the rest."""
    fields: dict[str, Any] = {
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_k": req.top_k,
        "min_p": req.min_p,
        "repetition_penalty": req.repetition_penalty,
        "presence_penalty": req.presence_penalty,
        "frequency_penalty": req.frequency_penalty,
        "logit_bias": req.logit_bias,
        "seed": req.seed,
    }
    given = {name: value for name, value in fields.items() if value is not None}
    return SamplingParams(
        **{**defaults.as_dict(), **given},
        max_tokens=max_tokens,
        stop=req.stop_strings,
        n=req.choices_n,
        logprobs=req.top_logprobs_count,
        ignore_eos=bool(req.ignore_eos),
        structured=structured,
        # Scored only when echoed with logprobs: it costs a logits row per prompt token.
        prompt_logprobs=bool(req.echo) and req.top_logprobs_count is not None and not req.stream,
        keep_special=keep_special,
    )


def start_generation(
    ctx: ServingContext,
    req: requests.SamplingRequest,
    request_id: str,
    prompt_ids: list[int],
    constraint: Constraint | None,
    keep_special: tuple[str, ...] = (),
) -> RequestStream:
    """Enqueue the request; the engine raises here (400 / 503), before any streaming.
    ``keep_special``: the markers the choice's parser must see (``ToolPlan.markers``)."""
    max_tokens = resolve_max_tokens(req, len(prompt_ids), ctx.engine.context_length)
    spec = constraint.spec if constraint is not None else None
    defaults = ctx.models.sampling_defaults()
    params = sampling_params(
        req, max_tokens=max_tokens, structured=spec, defaults=defaults, keep_special=keep_special
    )
    try:
        return ctx.engine.generate(GenerationRequest(request_id, prompt_ids, params))
    except StructuredOutputError as exc:
        field = constraint.field if constraint is not None else None
        raise InvalidRequest(f"{field}: {exc}", field) from exc


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
        logprobs = responses.prompt_logprobs_object(texts, prompt_ids, scores)
    return [responses.prompt_part(text, logprobs)]


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

    def wire(self) -> responses.Usage:
        return responses.usage(
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


async def cancel_on_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client goes away first.

    A non-streaming request would otherwise keep its sequence decoding for nobody (and an
    SDK that timed out retries it, doubling the load).
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        raise ClientDisconnected("Client closed the request.")
    return task.result()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
