"""Starting a generation: ``max_tokens`` resolved against the context, the request's
sampling fields over the server's defaults, the engine's own refusals as statuses, and a
non-streaming request cancelled when its client leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.types import Receive

from tether.api.errors import (
    ClientDisconnected,
    InvalidRequest,
)
from tether.api.pipeline.context import ServingContext
from tether.api.pipeline.prompt import Constraint
from tether.api.wire import requests
from tether.engine.base import RequestStream
from tether.engine.errors import ContextLengthExceededError, StructuredOutputError
from tether.engine.request import GenerationRequest, StepOutput
from tether.engine.sampling_params import SamplingDefaults, SamplingParams
from tether.engine.structured import StructuredOutput
from tether.pool.pool import Lease

# ``max_tokens`` when the request has none: what remains of the context, at most this much.
# With a large ``--ctx-size`` the whole remainder would let one runaway request hold a
# sequence slot for tens of thousands of CPU decode steps; 4096 is still more than any
# ordinary answer, and a client may ask for more explicitly.
DEFAULT_MAX_TOKENS = 4096
T = TypeVar("T")


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
    lease: Lease,
    req: requests.SamplingRequest,
    request_id: str,
    prompt_ids: list[int],
    constraint: Constraint | None,
    keep_special: tuple[str, ...] = (),
) -> RequestStream:
    """Enqueue the request; the engine raises here (400 / 503), before any streaming, and
    ``lease`` is released then. The stream holds ``lease`` until it closes.
    ``keep_special``: the markers the choice's parser must see (``ToolPlan.markers``)."""
    try:
        max_tokens = resolve_max_tokens(req, len(prompt_ids), ctx.engine.context_length)
        spec = constraint.spec if constraint is not None else None
        defaults = ctx.served.sampling_defaults()
        params = sampling_params(
            req,
            max_tokens=max_tokens,
            structured=spec,
            defaults=defaults,
            keep_special=keep_special,
        )
        try:
            stream = ctx.engine.generate(GenerationRequest(request_id, prompt_ids, params))
        except StructuredOutputError as exc:
            field = constraint.field if constraint is not None else None
            raise InvalidRequest(f"{field}: {exc}", field) from exc
    except BaseException:
        lease.release()
        raise
    return LeasedStream(stream, lease)


class LeasedStream:
    """An engine stream that holds its model's lease: released when the stream closes (or
    ends, or fails), so the model is never unloaded under a request."""

    def __init__(self, stream: RequestStream, lease: Lease) -> None:
        self._stream = stream
        self._lease = lease

    def __aiter__(self) -> LeasedStream:
        return self

    async def __anext__(self) -> StepOutput:
        try:
            return await self._stream.__anext__()
        except (StopAsyncIteration, Exception):  # ended or failed; not a cancelled reader
            self._lease.release()
            raise

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._lease.release()

    async def __aenter__(self) -> LeasedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


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
