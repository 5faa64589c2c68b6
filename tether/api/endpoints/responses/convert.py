"""Responses API items ↔ chat: a request (with the stored conversation it continues) becomes
the chat completion request the chat endpoint already knows how to prepare, and output items
become input items of the next turn."""

from __future__ import annotations

from typing import Any

from tether.api.endpoints.responses.wire import (
    FunctionCallItem,
    FunctionCallOutputItem,
    InputItem,
    MessageItem,
    ReasoningItem,
    ResponsesRequest,
    parse_input_item,
)
from tether.api.errors import InvalidRequest
from tether.api.wire import requests


def input_items(req: ResponsesRequest) -> list[InputItem]:
    """The request's ``input``: a string is one user message."""
    if isinstance(req.input, str):
        return [MessageItem(role="user", content=req.input)]
    items = []
    for index, raw in enumerate(req.input):
        try:
            items.append(parse_input_item(raw, index))
        except ValueError as exc:
            raise InvalidRequest(f"input: {exc}", "input") from exc
    return items


def chat_request(
    req: ResponsesRequest, history: list[dict[str, Any]], items: list[InputItem]
) -> requests.ChatCompletionRequest:
    """The chat completion request for ``req``: ``instructions`` as the system message, then
    the stored conversation (``history``: earlier input and output items, as stored), then
    this request's items."""
    earlier = [parse_input_item(item, index) for index, item in enumerate(history)]
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages.extend(_messages([*earlier, *items]))
    if not messages:
        raise InvalidRequest("input: at least one item is needed", "input")
    body: dict[str, Any] = {"model": req.model, "messages": messages}
    if req.max_output_tokens is not None:
        body["max_tokens"] = req.max_output_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    tools = req.function_tools()
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": tool.model_dump(exclude_none=True, exclude={"type", "strict"}),
            }
            for tool in tools
        ]
    choice = req.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            choice
            if isinstance(choice, str)
            else {"type": "function", "function": {"name": choice.name}}
        )
    fmt = req.text.format if req.text is not None else None
    if choice is not None and choice != "auto" and choice != "none":
        fmt = None  # a forced call writes no message: the text format has nothing to shape
    if fmt is not None and fmt.type == "json_schema":
        if fmt.schema_ is None:
            raise InvalidRequest("text.format: json_schema needs a 'schema'", "text.format")
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.name or "response", "schema": fmt.schema_},
        }
    elif fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    if req.reasoning is not None and req.reasoning.effort is not None:
        body["reasoning_effort"] = req.reasoning.effort
    return requests.ChatCompletionRequest.model_validate(body)


def _messages(items: list[InputItem]) -> list[dict[str, Any]]:
    """Chat messages: consecutive function calls are one assistant turn; a reasoning item
    goes with the assistant turn after it."""
    messages: list[dict[str, Any]] = []
    reasoning: str | None = None
    for item in items:
        if isinstance(item, ReasoningItem):
            reasoning = item.text
        elif isinstance(item, MessageItem):
            message: dict[str, Any] = {"role": item.role, "content": item.text}
            if item.role == "assistant" and reasoning is not None:
                message["reasoning"], reasoning = reasoning, None
            messages.append(message)
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                if reasoning is not None:
                    message["reasoning"], reasoning = reasoning, None
                messages.append(message)
        else:
            assert isinstance(item, FunctionCallOutputItem)
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.text})
    return messages
