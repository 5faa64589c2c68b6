"""Tools in the prompt of a template that does not render them itself.

The functions are listed in the system (or first user) text with the instruction to answer
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; earlier calls are written back in
that form, and ``tool`` results come back as user text
``<tool_response>{"name": ..., "content": ...}</tool_response>``. The ``tether`` parser
(``tether.chat.tool_parsers.json_calls``) reads that form back. A template that writes calls
in its own form but lists no tools gets the same list with its own form as the example.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tether.chat.messages import Function, Message

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

_TOOLS_INSTRUCTION = """You can call the following functions (name, description, JSON schema of \
the arguments):
{functions}

To call a function, answer only with
{example}
(one such block per call). Otherwise, answer normally."""
TAGGED_EXAMPLE = (
    '<tool_call>{"name": "<function name>", "arguments": {<the arguments as JSON>}}</tool_call>'
)


# --- writing: the plain form ------------------------------------------------------------------


def plain_messages(messages: Sequence[Message], tools: Sequence[Function]) -> list[dict[str, Any]]:
    """Only system/user/assistant messages with string content; tools become text."""
    names_by_call_id: dict[str, str] = {}
    plain: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            names_by_call_id.update(
                {call.id: call.name for call in message.tool_calls if call.id is not None}
            )
            calls = [_format_call(call.name, call.arguments) for call in message.tool_calls]
            parts = [message.content or "", *calls]
            content = "\n".join(p for p in parts if p)
            plain.append({"role": "assistant", "content": content, **message.reasoning_fields()})
        elif message.role == "tool":
            plain.append({"role": "user", "content": _tool_response(message, names_by_call_id)})
        else:
            plain.append({"role": message.role, "content": message.content or ""})
    if tools:
        add_instruction(plain, tools_instruction(tools))
    return plain


def _format_call(name: str, arguments: Any) -> str:
    call = {"name": name, "arguments": dict(arguments)}
    return f"{TOOL_CALL_OPEN}{json.dumps(call, ensure_ascii=False)}{TOOL_CALL_CLOSE}"


def _tool_response(message: Message, names_by_call_id: dict[str, str]) -> str:
    name = message.name or names_by_call_id.get(message.tool_call_id or "")
    body: dict[str, Any] = {"name": name} if name else {}
    body["content"] = message.content or ""
    return f"<tool_response>{json.dumps(body, ensure_ascii=False)}</tool_response>"


def tools_instruction(tools: Sequence[Function], example: str = TAGGED_EXAMPLE) -> str:
    """The functions and how to call them; ``example`` shows the form of a call."""
    listed = [json.dumps(tool.spec(), ensure_ascii=False) for tool in tools]
    return _TOOLS_INSTRUCTION.format(functions="\n".join(listed), example=example)


def add_instruction(messages: list[dict[str, Any]], instruction: str) -> None:
    first = messages[0]
    if first["role"] == "system":
        first["content"] = f"{first['content']}\n\n{instruction}"
    elif first["role"] == "user":
        first["content"] = f"{instruction}\n\n{first['content']}"
    else:
        messages.insert(0, {"role": "system", "content": instruction})
