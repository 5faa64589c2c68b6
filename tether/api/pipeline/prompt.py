"""A request's prompt: chat messages rendered by the template and tokenized (off the event
loop when long), and its ``response_format`` as an engine-neutral constraint. Everything
here raises before any streaming starts, so the client gets a real status.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from starlette.concurrency import run_in_threadpool

from tether.api.errors import (
    InvalidRequest,
)
from tether.api.pipeline.context import ServingContext
from tether.api.wire import requests
from tether.chat.messages import Function, Message
from tether.chat.reasoning import Reasoning
from tether.chat.template import ChatTemplateError
from tether.engine.base import Engine
from tether.engine.structured import StructuredOutput

# Tokenizing or templating more text than this runs in a thread, off the event loop that
# streams every other request's tokens.
INLINE_TEXT_CHARS = 16_384


T = TypeVar("T")


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
