"""The tool-call text format, both ways: how tools, calls and results are written into the
prompt for a template that does not render tools itself, and how calls are read back from
the model's answer (whole, or while it streams).

Unless the template handles ``tools`` itself, the functions are listed in the system (or
first user) text with the instruction to answer
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; earlier calls are written back in
that form, and ``tool`` results come back as user text
``<tool_response>{"name": ..., "content": ...}</tool_response>``. ``parse_tool_calls`` reads a
finished answer, accepting the tagged form and the bare JSON object that a forced call
(``StructuredOutput.tool_call``) produces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tether.chat.messages import Function, Message

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

_TAGGED_CALL = re.compile(r"\s*<tool_call>(.*?)</tool_call>\s*", re.DOTALL)
_TOOLS_INSTRUCTION = """You can call the following functions (name, description, JSON schema of \
the arguments):
{functions}

To call a function, answer only with
<tool_call>{{"name": "<function name>", "arguments": {{<the arguments as JSON>}}}}</tool_call>
(one such block per call). Otherwise, answer normally."""


@dataclass(frozen=True, slots=True)
class ParsedCall:
    name: str
    arguments: str  # compact JSON text of an object, as OpenAI's wire carries it


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
        _add_instruction(plain, _tools_instruction(tools))
    return plain


def _format_call(name: str, arguments: Any) -> str:
    call = {"name": name, "arguments": dict(arguments)}
    return f"{TOOL_CALL_OPEN}{json.dumps(call, ensure_ascii=False)}{TOOL_CALL_CLOSE}"


def _tool_response(message: Message, names_by_call_id: dict[str, str]) -> str:
    name = message.name or names_by_call_id.get(message.tool_call_id or "")
    body: dict[str, Any] = {"name": name} if name else {}
    body["content"] = message.content or ""
    return f"<tool_response>{json.dumps(body, ensure_ascii=False)}</tool_response>"


def _tools_instruction(tools: Sequence[Function]) -> str:
    listed = [json.dumps(tool.spec(), ensure_ascii=False) for tool in tools]
    return _TOOLS_INSTRUCTION.format(functions="\n".join(listed))


def _add_instruction(messages: list[dict[str, Any]], instruction: str) -> None:
    first = messages[0]
    if first["role"] == "system":
        first["content"] = f"{first['content']}\n\n{instruction}"
    elif first["role"] == "user":
        first["content"] = f"{instruction}\n\n{first['content']}"
    else:
        messages.insert(0, {"role": "system", "content": instruction})


# --- reading: calls in the answer -------------------------------------------------------------


def parse_tool_calls(text: str, tool_names: frozenset[str]) -> list[ParsedCall] | None:
    """The calls in a finished answer, or None when it is not (only) tool calls.

    Accepts one or more ``<tool_call>{json}</tool_call>`` blocks, or the whole answer being
    ``{"name": ..., "arguments": {...}}``. Every name must be in ``tool_names``.
    """
    stripped = text.strip()
    if stripped.startswith(TOOL_CALL_OPEN):
        bodies = _tagged_bodies(stripped)
    elif stripped.startswith("{"):
        bodies = [stripped]
    else:
        return None
    calls = [_parse_call(body, tool_names) for body in bodies or ()]
    if not calls or any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


def could_be_tool_call_prefix(text: str) -> bool:
    """True while streamed ``text`` may still become a tool call (so it should be held back)."""
    head = text.lstrip()
    return TOOL_CALL_OPEN.startswith(head) or head.startswith((TOOL_CALL_OPEN, "{"))


class ToolCallBuffer:
    """Holds back one choice's streamed text while it could still be a tool call.

    A call needs its function name before its first delta, so text that begins like a call
    (``<tool_call>`` or ``{``) is held until the choice finishes and parsed whole. Text that
    cannot be a call is released at once. A forced call is always held.
    """

    def __init__(self, names: frozenset[str], forced: bool) -> None:
        self._names = names
        self._pieces: list[str] = []
        self._holding = True
        self._committed = forced

    def feed(self, text: str) -> str:
        """Text to send now ("" while holding)."""
        if not self._holding:
            return text
        self._pieces.append(text)
        if self._committed:
            return ""
        head = "".join(self._pieces).lstrip()
        if not could_be_tool_call_prefix(head):
            return self._release()
        # Past the opening, it stays a possible call: stop re-joining the pieces.
        self._committed = head.startswith(("{", TOOL_CALL_OPEN))
        return ""

    def finish(self) -> tuple[str, list[ParsedCall] | None]:
        """At the choice's end: (held text to send, the parsed calls or None)."""
        if not self._holding:
            return "", None
        calls = parse_tool_calls("".join(self._pieces), self._names)
        if calls:
            self._pieces.clear()
            return "", calls
        return self._release(), None

    def _release(self) -> str:
        self._holding = False
        text = "".join(self._pieces)
        self._pieces.clear()
        return text


def _tagged_bodies(text: str) -> list[str] | None:
    bodies: list[str] = []
    position = 0
    while position < len(text):
        match = _TAGGED_CALL.match(text, position)
        if match is None:
            return None
        bodies.append(match.group(1))
        position = match.end()
    return bodies


def _parse_call(body: str, tool_names: frozenset[str]) -> ParsedCall | None:
    try:
        call = json.loads(body)
    except ValueError:
        return None
    if not isinstance(call, dict) or call.get("name") not in tool_names:
        return None
    # Llama 3.x templates ask for "parameters" rather than "arguments".
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict) or not set(call) <= {"name", "arguments", "parameters"}:
        return None
    compact = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    return ParsedCall(call["name"], compact)
