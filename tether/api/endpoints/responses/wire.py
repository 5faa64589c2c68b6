"""The Responses API's wire shapes: request bodies (pydantic), and the response object, its
output items and its stream events (plain dicts). With ``tether.api.wire.requests`` and
``tether.api.responses``, the only modules that know JSON field names.

Shapes follow OpenAI's spec as the ``openai`` SDKs read them (``openai.types.responses``).
Unlike chat completions, a request's unknown fields are a 400 naming the field, and so are
the hosted tools (``web_search``, ``file_search``, remote MCP …) this server cannot run.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tether.api.wire.requests import ModelRequest

ID_BYTES = 12


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(ID_BYTES)}"


# --- requests ------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    type: Literal["input_text", "output_text", "text", "reasoning_text", "summary_text"]
    text: str


class MessageItem(_Lenient):
    type: Literal["message"] = "message"
    id: str | None = None
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class FunctionCallItem(_Lenient):
    type: Literal["function_call"]
    id: str | None = None
    call_id: str
    name: str
    arguments: str


class FunctionCallOutputItem(_Lenient):
    type: Literal["function_call_output"]
    id: str | None = None
    call_id: str
    output: str | list[ContentPart]

    @property
    def text(self) -> str:
        if isinstance(self.output, str):
            return self.output
        return "\n".join(part.text for part in self.output)


class ReasoningItem(_Lenient):
    type: Literal["reasoning"]
    id: str | None = None
    content: list[ContentPart] | None = None
    summary: list[ContentPart] = Field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(part.text for part in self.content or self.summary)


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem


class FunctionTool(_Lenient):
    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(_Strict):
    type: Literal["function"]
    name: str


class TextFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextOptions(_Lenient):
    format: TextFormat | None = None
    verbosity: str | None = None


class Reasoning(_Lenient):
    effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    summary: str | None = None


class ResponsesRequest(ModelRequest):
    model_config = ConfigDict(extra="forbid")

    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    reasoning: Reasoning | None = None
    metadata: dict[str, str] | None = None
    store: bool = True
    previous_response_id: str | None = None
    background: bool = False
    stream: bool = False
    # Accepted and ignored: they change nothing here.
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    stream_options: dict[str, Any] | None = None
    top_logprobs: int | None = None

    @field_validator("tools")
    @classmethod
    def _function_tools_only(
        cls, tools: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        for index, tool in enumerate(tools or ()):
            kind = tool.get("type")
            if kind != "function":
                raise ValueError(f"tools[{index}]: only function tools are supported, not {kind!r}")
            FunctionTool.model_validate(tool)
        return tools

    def function_tools(self) -> list[FunctionTool]:
        return [FunctionTool.model_validate(tool) for tool in self.tools or ()]


def parse_input_item(raw: dict[str, Any], index: int) -> InputItem:
    """One ``input`` item; a message may leave out its ``type``."""
    kind = raw.get("type", "message")
    models: dict[str, type[BaseModel]] = {
        "message": MessageItem,
        "function_call": FunctionCallItem,
        "function_call_output": FunctionCallOutputItem,
        "reasoning": ReasoningItem,
    }
    model = models.get(str(kind))
    if model is None:
        raise ValueError(f"input[{index}]: items of type {kind!r} are not supported")
    item = model.model_validate(raw)
    assert isinstance(item, MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem)
    return item


def input_item_wire(item: InputItem) -> dict[str, Any]:
    """An input item as stored and listed by ``input_items`` (always with an id)."""
    if isinstance(item, MessageItem):
        role = item.role
        kind = "output_text" if role == "assistant" else "input_text"
        content = [{"type": kind, "text": item.text}]
        return {
            "id": item.id or new_id("msg"),
            "type": "message",
            "role": role,
            "status": "completed",
            "content": content,
        }
    if isinstance(item, FunctionCallItem):
        return {
            "id": item.id or new_id("fc"),
            "type": "function_call",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments,
            "status": "completed",
        }
    if isinstance(item, FunctionCallOutputItem):
        return {
            "id": item.id or new_id("fco"),
            "type": "function_call_output",
            "call_id": item.call_id,
            "output": item.text,
            "status": "completed",
        }
    return reasoning_item(item.id or new_id("rs"), item.text, "completed")


# --- output items ----------------------------------------------------------------------------


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [output_text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [reasoning_text_part(text)]
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content, "status": status}


def reasoning_text_part(text: str) -> dict[str, Any]:
    return {"type": "reasoning_text", "text": text}


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


# --- the response object ---------------------------------------------------------------------

Status = Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]


def response_object(
    *,
    response_id: str,
    model: str,
    request: ResponsesRequest,
    status: Status,
    created_at: int | None = None,
    output: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
) -> dict[str, Any]:
    tools = [tool.model_dump(exclude_none=True) for tool in request.function_tools()]
    choice = request.tool_choice
    text_format = request.text.format if request.text and request.text.format else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": status,
        "background": request.background,
        "error": error,
        "incomplete_details": None if incomplete_reason is None else {"reason": incomplete_reason},
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "metadata": request.metadata or {},
        "model": model,
        "output": output or [],
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {
            "effort": request.reasoning.effort if request.reasoning else None,
            "summary": None,
        },
        "store": request.store,
        "temperature": request.temperature,
        "text": {
            "format": text_format.model_dump(by_alias=True, exclude_none=True)
            if text_format
            else {"type": "text"}
        },
        "tool_choice": choice.model_dump()
        if isinstance(choice, NamedFunction)
        else (choice or "auto"),
        "tools": tools,
        "top_p": request.top_p,
        "truncation": request.truncation or "disabled",
        "usage": usage,
        "user": request.user,
    }


def usage(input_tokens: int, cached: int, output_tokens: int, reasoning: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def error_object(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


def deleted(response_id: str) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "deleted": True}


def item_list(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


# --- stream events ---------------------------------------------------------------------------


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """An event without its ``sequence_number`` (the event log numbers it)."""
    return {"type": kind, **fields}


def error_event(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "param": param}
