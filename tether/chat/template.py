"""Rendering chat messages into the prompt text that the model continues.

Two paths. When the GGUF has a ``tokenizer.chat_template`` it is rendered with Jinja2 in a
``SandboxedEnvironment`` (a GGUF is untrusted input): no attribute outside the template's own
values is reachable, but a template may build and change its own lists and dicts, as Kimi
K2's queue of call ids does and as llama.cpp's renderer allows (issue 19). Each render gets
fresh copies of the messages and tools, so nothing a template changes outlives its render.
Without one (the default Gemma 3 270M) the messages are written in Gemma's
turn format, following Gemma 3's official template.

Tools: a template that renders ``tools`` itself gets them as they are. One that writes calls
but lists no tools (DeepSeek V3.1, R1) gets the calls as they are and the functions listed in
the system text, with a call in its own form as the example. Otherwise the messages are
written in the plain form of ``tether.chat.tool_calls`` (functions listed in the system text,
calls and results as tagged text) before rendering. ``tool_parser`` names the format the
model will answer calls in (``tether.chat.tool_parsers``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from tether.chat.call_ids import CallIds
from tether.chat.messages import Function, Message, ToolCall
from tether.chat.reasoning import ReasoningMarkers
from tether.chat.tool_calls import add_instruction, plain_messages, tools_instruction
from tether.chat.tool_parsers import detect as detect_tool_parser

# Variables every render sets; a request's template variables cannot replace them.
RESERVED_VARIABLES = frozenset(
    {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"}
)


class ChatTemplateError(ValueError):
    """The template failed on these messages (the API answers 400, naming ``messages``)."""


class ChatTemplate:
    """Renders messages (OpenAI chat format) into a prompt ending with the assistant's opening.

    ``source`` is the GGUF's ``tokenizer.chat_template`` or None for Gemma's format; a source
    that does not compile raises ``ValueError``. The prompt never starts with ``bos_token``:
    the tokenizer adds BOS. ``reasoning_markers`` are the template's thinking markers, if it
    is a reasoning model's.
    """

    def __init__(
        self,
        source: str | None,
        *,
        bos_token: str = "",
        eos_token: str = "",
        tool_parser: str | None = None,
        reasoning_markers: ReasoningMarkers | None = None,
    ) -> None:
        self._bos_token = bos_token
        self._eos_token = eos_token
        self._template: jinja2.Template | None = None
        self._native_tools = False
        self._native_calls = False
        self.reasoning_markers = reasoning_markers or ReasoningMarkers.detect(source)
        self.call_ids = CallIds.for_template(source)
        if source is not None:
            environment = _sandbox()
            try:
                self._template = environment.from_string(source)
                undeclared = meta.find_undeclared_variables(environment.parse(source))
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"the chat template does not compile: {exc}") from exc
            self._native_tools = "tools" in undeclared
            # DeepSeek V3.1 and R1's templates write calls in their format but list no tools.
            self._native_calls = "tool_calls" in source
        native = self._native_tools or self._native_calls
        # Tether's own tagged form is what the model is asked for when the template writes
        # no calls itself; otherwise the family's format, as detected (issue 19).
        self.tool_parser = tool_parser or (detect_tool_parser(source) if native else "tether")
        self._call_example: str | None = None
        # Functionary's template concatenates arguments as text: found on a first failure.
        self._string_arguments = False

    @property
    def native_tools(self) -> bool:
        """True when the Jinja template renders ``tools`` itself (so no instruction is added)."""
        return self._native_tools

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[Function] = (),
        variables: Mapping[str, Any] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt text; raises ``ChatTemplateError`` for messages it cannot render.

        ``variables`` are extra template variables (a request's ``chat_template_kwargs``,
        e.g. ``enable_thinking``); Gemma's built-in format has none.
        """
        if self._template is None:
            return _render_gemma(plain_messages(messages, tools), add_generation_prompt)
        try:
            return self._render_messages(messages, tools, variables, add_generation_prompt)
        except ChatTemplateError as exc:
            calls = any(message.tool_calls for message in messages)
            if self._string_arguments or not calls or not isinstance(exc.__cause__, TypeError):
                raise
        # llama.cpp passes arguments as text to a template that fails on objects
        # (``func_args_not_string`` in common/chat.cpp); so does Tether, from now on.
        self._string_arguments = True
        try:
            return self._render_messages(messages, tools, variables, add_generation_prompt)
        except ChatTemplateError:
            self._string_arguments = False
            raise

    def _render_messages(
        self,
        messages: Sequence[Message],
        tools: Sequence[Function],
        variables: Mapping[str, Any] | None,
        add_generation_prompt: bool,
    ) -> str:
        assert self._template is not None
        native = None
        if self._native_tools:
            rendered = self._for_template(messages)
            native = [tool.for_template() for tool in tools] or None
        elif self._native_calls:
            rendered = self._for_template(messages)
            if tools:
                example = self._example(variables or {})
                add_instruction(rendered, tools_instruction(tools, example))
        else:
            rendered = plain_messages(messages, tools)
        return self._render_jinja(
            self._template, rendered, native, variables or {}, add_generation_prompt
        )

    def said(
        self,
        messages: Sequence[Message],
        turn: Message,
        tools: Sequence[Function] = (),
        variables: Mapping[str, Any] | None = None,
    ) -> str:
        """What the model writes for the assistant ``turn`` after ``messages``: its render
        past the generation prompt, up to the end of the text (end-of-turn markers included).
        """
        prompt = self.render(messages, tools, variables)
        full = self.render([*messages, turn], tools, variables, add_generation_prompt=False)
        shared = 0
        while shared < min(len(prompt), len(full)) and prompt[shared] == full[shared]:
            shared += 1
        if shared < len(prompt):
            # The generation prompt opens more than a past turn shows (DeepSeek R1's
            # "<think>\n"): the model's text starts after the last marker or line both share.
            while shared > 0 and full[shared - 1] not in ">\n]":
                shared -= 1
        return full[shared:]

    def _for_template(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        rendered = [message.for_template() for message in messages]
        if self._string_arguments:
            for message in rendered:
                for call in message.get("tool_calls", ()):
                    function = call["function"]
                    function["arguments"] = json.dumps(function["arguments"], ensure_ascii=False)
        if self.call_ids.nine:
            for message in rendered:
                for call in message.get("tool_calls", ()):
                    if "id" in call:
                        call["id"] = self.call_ids.for_template_id(call["id"])
                if "tool_call_id" in message:
                    message["tool_call_id"] = self.call_ids.for_template_id(message["tool_call_id"])
        return rendered

    def _example(self, variables: Mapping[str, Any]) -> str:
        """A call as this template writes it, to show the model the form it should answer in
        when the template writes calls but does not list tools."""
        if self._call_example is None:
            call = ToolCall("function_name", {"argument": "value"}, self.call_ids.new())
            turn = Message("assistant", None, tool_calls=(call,))
            said = self.said([Message("user", "?")], turn, (), variables)
            self._call_example = said.strip()
        return self._call_example

    def _render_jinja(
        self,
        template: jinja2.Template,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        variables: Mapping[str, Any],
        add_generation_prompt: bool,
    ) -> str:
        reserved = sorted(RESERVED_VARIABLES.intersection(variables))
        if reserved:
            raise ChatTemplateError(f"template variable {reserved[0]!r} is set by the server")
        try:
            text = template.render(
                **variables,
                messages=messages,
                tools=tools,
                add_generation_prompt=add_generation_prompt,
                bos_token=self._bos_token,
                eos_token=self._eos_token,
            )
        except Exception as exc:  # a template can fail in any way on a request's messages
            raise ChatTemplateError(str(exc)) from exc
        # Templates write BOS themselves; tokenizing adds it too. llama.cpp strips it the same
        # way ("To avoid double BOS / EOS tokens", common/chat.cpp).
        if self._bos_token and text.startswith(self._bos_token):
            text = text[len(self._bos_token) :]
        return text


# --- Jinja environment ------------------------------------------------------------------------


class _GenerationTag(Extension):
    """Pass-through for HF's ``{% generation %}`` tag (it marks assistant text for training)."""

    tags = {"generation"}  # noqa: RUF012 (jinja2 declares it as a plain attribute)

    def parse(self, parser: Parser) -> list[nodes.Node]:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _sandbox() -> SandboxedEnvironment:
    # The same settings and helpers as HF transformers (utils/chat_template_utils.py), which
    # GGUF templates are written for.
    environment = SandboxedEnvironment(
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
    # A filter chain such as ``tools | map(attribute='function')`` is a generator in Jinja (a
    # list in llama.cpp's renderer, which the templates were written for).
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
        default=_json_default,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Iterator):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


# --- validating and normalizing messages --------------------------------------------------------


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
