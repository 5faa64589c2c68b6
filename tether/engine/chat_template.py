"""Rendering chat messages into the prompt text that the model continues.

Two paths. When the GGUF has a ``tokenizer.chat_template`` it is rendered with Jinja2 in an
``ImmutableSandboxedEnvironment``, as HF transformers and llama-cpp-python do (a GGUF is
untrusted input). Without one (the default Gemma 3 270M) the messages are written in Gemma's
turn format, following Gemma 3's official template.

Tool calling convention, shared with ``tether.api.tool_calls``: unless the template handles
``tools`` itself, the functions are listed in the system (or first user) text with the
instruction to answer ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; earlier
calls are written back in that form, and ``tool`` results come back as user text
``<tool_response>{"name": ..., "content": ...}</tool_response>``. ``parse_tool_calls`` reads a
finished answer, accepting the tagged form and the bare JSON object that a forced-call grammar
(``tether.engine.grammar.tool_call_grammar``) produces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tether.engine.errors import InvalidRequestError

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

_ROLES = ("system", "user", "assistant", "tool")
_TAGGED_CALL = re.compile(r"\s*<tool_call>(.*?)</tool_call>\s*", re.DOTALL)
_TOOLS_INSTRUCTION = """You can call the following functions (name, description, JSON schema of \
the arguments):
{functions}

To call a function, answer only with
<tool_call>{{"name": "<function name>", "arguments": {{<the arguments as JSON>}}}}</tool_call>
(one such block per call). Otherwise, answer normally."""


class ChatTemplate:
    """Renders messages (OpenAI chat format) into a prompt ending with the assistant's opening.

    ``source`` is the GGUF's ``tokenizer.chat_template`` or None for Gemma's format; a source
    that does not compile raises ``ValueError``. The prompt never starts with ``bos_token``:
    the tokenizer adds BOS.
    """

    def __init__(self, source: str | None, *, bos_token: str = "", eos_token: str = "") -> None:
        self._bos_token = bos_token
        self._eos_token = eos_token
        self._template: jinja2.Template | None = None
        self._native_tools = False
        if source is not None:
            environment = _sandbox()
            try:
                self._template = environment.from_string(source)
                undeclared = meta.find_undeclared_variables(environment.parse(source))
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"the chat template does not compile: {exc}") from exc
            self._native_tools = "tools" in undeclared

    @property
    def native_tools(self) -> bool:
        """True when the Jinja template renders ``tools`` itself (so no instruction is added)."""
        return self._native_tools

    def render(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt text; raises ``InvalidRequestError`` for messages it cannot render."""
        normalized = _normalize(messages)
        functions = [_function(tool) for tool in tools or ()]
        if self._template is None or not self._native_tools:
            normalized = _plain(normalized, functions)
        if self._template is None:
            return _render_gemma(normalized, add_generation_prompt)
        native_tools = list(tools) if tools and self._native_tools else None
        return self._render_jinja(self._template, normalized, native_tools, add_generation_prompt)

    def _render_jinja(
        self,
        template: jinja2.Template,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        add_generation_prompt: bool,
    ) -> str:
        try:
            text = template.render(
                messages=messages,
                tools=tools,
                add_generation_prompt=add_generation_prompt,
                bos_token=self._bos_token,
                eos_token=self._eos_token,
            )
        except Exception as exc:  # a template can fail in any way on a request's messages
            raise InvalidRequestError(f"messages: {exc}", param="messages") from exc
        # Templates write BOS themselves; tokenizing adds it too. llama.cpp strips it the same
        # way ("To avoid double BOS / EOS tokens", common/chat.cpp).
        if self._bos_token and text.startswith(self._bos_token):
            text = text[len(self._bos_token) :]
        return text


def parse_tool_calls(text: str, tool_names: set[str]) -> list[dict[str, str]] | None:
    """The calls in a finished answer, or None when it is not (only) tool calls.

    Accepts one or more ``<tool_call>{json}</tool_call>`` blocks, or the whole answer being
    ``{"name": ..., "arguments": {...}}``. Every name must be in ``tool_names``. Each call comes
    back as ``{"name": ..., "arguments": <compact JSON string>}``, as OpenAI's wire carries it.
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


# --- Jinja environment ------------------------------------------------------------------------


class _GenerationTag(Extension):
    """Pass-through for HF's ``{% generation %}`` tag (it marks assistant text for training)."""

    tags = {"generation"}  # noqa: RUF012 (jinja2 declares it as a plain attribute)

    def parse(self, parser: Parser) -> list[nodes.Node]:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _sandbox() -> ImmutableSandboxedEnvironment:
    # The same settings and helpers as HF transformers (utils/chat_template_utils.py), which
    # GGUF templates are written for.
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, "jinja2.ext.loopcontrols"],
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    return environment


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson HTML-escapes '<', '>', '&' and "'", which templates do not expect.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


# --- validating and normalizing messages --------------------------------------------------------


def _invalid(message: str, param: str = "messages") -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _normalize(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies with string content (text parts joined) and tool-call arguments as objects."""
    if not messages:
        raise _invalid("messages: at least one message is required")
    return [_normalize_message(message, index) for index, message in enumerate(messages)]


def _normalize_message(message: Any, index: int) -> dict[str, Any]:
    if not isinstance(message, dict) or message.get("role") not in _ROLES:
        raise _invalid(f"messages[{index}]: role must be one of {', '.join(_ROLES)}")
    normalized = dict(message)
    calls = message.get("tool_calls") if message["role"] == "assistant" else None
    if calls:
        normalized["tool_calls"] = [_normalize_call(call, index) for call in calls]
    content = message.get("content")
    if content is None and message["role"] == "assistant":
        normalized["content"] = None if calls else ""
    else:
        normalized["content"] = _text(content, index)
    return normalized


def _text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        for part in content
    ):
        # Joined with newlines, as vLLM does for text parts (entrypoints/chat_utils.py).
        return "\n".join(part["text"] for part in content)
    raise _invalid(f"messages[{index}]: content must be a string or a list of text parts")


def _normalize_call(call: Any, index: int) -> dict[str, Any]:
    # Templates read arguments as an object (HF's convention) while OpenAI sends a JSON string;
    # vLLM converts them the same way before rendering.
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _invalid(f"messages[{index}]: each tool call needs function.name")
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = None
    if not isinstance(arguments, dict):
        raise _invalid(f"messages[{index}]: tool call arguments must be a JSON object")
    return {**call, "type": "function", "function": {**function, "arguments": arguments}}


def _function(tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        message = "tools: each tool must be {'type': 'function', 'function': {'name': ...}}"
        raise _invalid(message, "tools")
    return function


# --- the plain form: tool calls and results as text ------------------------------------------


def _plain(messages: list[dict[str, Any]], functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only system/user/assistant messages with string content; tools become text."""
    names_by_call_id: dict[str, str] = {}
    plain: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role == "assistant":
            calls = message.get("tool_calls") or []
            names_by_call_id.update(
                {call["id"]: call["function"]["name"] for call in calls if "id" in call}
            )
            parts = [message["content"] or "", *(_format_call(call["function"]) for call in calls)]
            plain.append({"role": role, "content": "\n".join(part for part in parts if part)})
        elif role == "tool":
            plain.append({"role": "user", "content": _tool_response(message, names_by_call_id)})
        else:
            plain.append({"role": role, "content": message["content"]})
    if functions:
        _add_instruction(plain, _tools_instruction(functions))
    return plain


def _format_call(function: dict[str, Any]) -> str:
    call = {"name": function["name"], "arguments": function["arguments"]}
    return f"{TOOL_CALL_OPEN}{json.dumps(call, ensure_ascii=False)}{TOOL_CALL_CLOSE}"


def _tool_response(message: dict[str, Any], names_by_call_id: dict[str, str]) -> str:
    name = message.get("name") or names_by_call_id.get(message.get("tool_call_id", ""))
    body = {"name": name} if name else {}
    body["content"] = message["content"]
    return f"<tool_response>{json.dumps(body, ensure_ascii=False)}</tool_response>"


def _tools_instruction(functions: list[dict[str, Any]]) -> str:
    keys = ("name", "description", "parameters")
    listed = [
        json.dumps({key: function[key] for key in keys if key in function}, ensure_ascii=False)
        for function in functions
    ]
    return _TOOLS_INSTRUCTION.format(functions="\n".join(listed))


def _add_instruction(messages: list[dict[str, Any]], instruction: str) -> None:
    first = messages[0]
    if first["role"] == "system":
        first["content"] = f"{first['content']}\n\n{instruction}"
    elif first["role"] == "user":
        first["content"] = f"{instruction}\n\n{first['content']}"
    else:
        messages.insert(0, {"role": "system", "content": instruction})


# --- Gemma's turn format ----------------------------------------------------------------------


def _render_gemma(messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
    """Gemma 3's official template, written out: no system role, so a leading system text
    opens the first user turn (followed by a blank line); contents are stripped."""
    system = ""
    if messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    turns: list[str] = []
    for message in messages:
        role = "model" if message["role"] == "assistant" else "user"
        text = message["content"].strip()
        if system and role == "user":
            text = f"{system}\n\n{text}"
        elif system:
            turns.append(_gemma_turn("user", system.strip()))
        system = ""
        turns.append(_gemma_turn(role, text))
    if system:
        turns.append(_gemma_turn("user", system.strip()))
    if add_generation_prompt:
        turns.append("<start_of_turn>model\n")
    return "".join(turns)


def _gemma_turn(role: str, text: str) -> str:
    return f"<start_of_turn>{role}\n{text}<end_of_turn>\n"


# --- reading calls back -----------------------------------------------------------------------


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


def _parse_call(body: str, tool_names: set[str]) -> dict[str, str] | None:
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
    return {"name": call["name"], "arguments": compact}
