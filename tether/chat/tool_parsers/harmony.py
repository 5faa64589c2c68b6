"""gpt-oss's harmony format: the answer is a sequence of messages, each a header and a body.

After the generation prompt ``<|start|>assistant`` the model writes messages such as::

    <|channel|>analysis<|message|>Need the weather.<|end|>
    <|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}<|call|>
    <|start|>assistant<|channel|>final<|message|>It is sunny.<|return|>

(the first message's role was written by the prompt; ``to=`` may also sit in the role
header, ``<|start|>assistant to=functions.f<|channel|>commentary json<|message|>``, as the
template writes earlier calls). The analysis channel is reasoning, the final channel and
commentary without a recipient (a preamble) are content, and a message to ``functions.NAME``
is a call. Header words (role, channel, recipient, content type) are markup, like markers.

One small state machine reads it as it streams (OpenAI's ``openai-harmony`` parser, which
vLLM uses, raises on anything off the grammar: vLLM #46464). Here nothing raises: text with
no harmony header is content, a call to an unknown function or whose arguments are not a JSON
object is released as content, and a marker out of place is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Literal

from tether.chat.messages import Function
from tether.chat.reasoning import Part, partial_suffix
from tether.chat.tool_parsers.base import (
    CallFormat,
    CallSection,
    CallShape,
    Event,
    ToolParser,
    compact,
    loads_object,
)

START, END, MESSAGE = "<|start|>", "<|end|>", "<|message|>"
CHANNEL, CONSTRAIN = "<|channel|>", "<|constrain|>"
RETURN, CALL = "<|return|>", "<|call|>"
MARKERS = (START, END, MESSAGE, CHANNEL, CONSTRAIN, RETURN, CALL)
MARKER = re.compile("|".join(re.escape(marker) for marker in MARKERS))
# What a message header can begin with where a message may start: the role header's
# <|start|>, or (the prompt having written <|start|>assistant) its recipient or channel.
HEADER_OPENERS = (START, CHANNEL, MESSAGE, CONSTRAIN, "to=")
# Header words are short names ("assistant", "functions.get_weather", "commentary json"):
# anything else means the text was not a header after all.
HEADER_WORDS = re.compile(r"[\w.:=/\s-]{0,128}")
RECIPIENT = re.compile(r"(?:^|\s)to=([^\s<]+)")
CHANNEL_NAME = re.compile(re.escape(CHANNEL) + r"\s*([^\s<]+)")
ROLE = re.compile(r"\s*([^\s<]*)")

Kind = Literal["reasoning", "content", "call"]


class State(Enum):
    BOUNDARY = "boundary"  # where a message may start
    HEADER = "header"  # reading a header, up to <|message|>
    BODY = "body"  # reading a body, up to <|end|>, <|call|> or <|return|>


class HarmonyParser(ToolParser):
    """Harmony messages read into reasoning, content and calls, as they stream."""

    name = "openai"
    openers = ("to=functions.",)
    # What a call's header may hold after its recipient, up to the arguments: the channel
    # (when the recipient came first, as the template writes it) and the content type.
    call_headers = (
        f"{CHANNEL}commentary json{MESSAGE}",
        f"{CHANNEL}commentary {CONSTRAIN}json{MESSAGE}",
        f"{CHANNEL}commentary{MESSAGE}",
        f" {CONSTRAIN}json{MESSAGE}",
        f" json{MESSAGE}",
        MESSAGE,
    )

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat:
        shapes = tuple(
            CallShape((f"{tool.name}{header}",), tool.parameters or {}, (CALL,))
            for tool in tools
            for header in cls.call_headers
        )
        return CallFormat((CallSection(cls.openers[0], shapes),))

    reasons = True  # the analysis channel is its reasoning, with tools or without
    markers = MARKERS

    def __init__(self, tools: Mapping[str, Function]) -> None:
        super().__init__(tools)
        self._state = State.BOUNDARY
        self._header = ""  # the header so far, markers included
        self._role_given = False  # the header began at <|start|>, so it names a role
        self._kind: Kind = "content"
        self._function = ""  # the function a call message is addressed to
        self._arguments = ""  # a call's body so far (released whole, once it ends)
        self._said: set[Part] = set()  # parts that already have text
        self._message_said = False  # the current message released text

    @property
    def reasoning_active(self) -> bool:
        """True while the text fed so far ends inside an analysis message."""
        return self._state is State.BODY and self._kind == "reasoning"

    def _step(self, events: list[Event], final: bool) -> bool:
        """Consume what can be decided now; True when something was consumed."""
        if self._state is State.BOUNDARY:
            return self._boundary(final)
        if self._state is State.HEADER:
            return self._read_header(events, final)
        return self._read_body(events, final)

    def _boundary(self, final: bool) -> bool:
        head = self._held.lstrip()
        for opener in HEADER_OPENERS:
            if head.startswith(opener):
                # Whitespace between messages only separates them.
                self._held = head[len(START) :] if opener == START else head
                self._open_header(role_given=opener == START)
                return True
        if not head:
            if final:
                self._held = ""
            return False
        if not final and any(opener.startswith(head) for opener in HEADER_OPENERS):
            return False
        # No header: a model that just answers (or text after a message's end) is content.
        self._open_body("content")
        return True

    def _read_header(self, events: list[Event], final: bool) -> bool:
        held = self._held
        found = MARKER.search(held)
        if found is None:
            keep = 0 if final else _partial_marker(held)
            self._header += held[: len(held) - keep]
            self._held = held[len(held) - keep :]
            if self._not_a_header(events):
                return True
            if final:  # the answer ended inside a header: markup, nothing to say
                self._state = State.BOUNDARY
            return False
        self._header += held[: found.start()]
        if self._not_a_header(events):
            self._held = held[found.start() :]
            return True
        self._held = held[found.end() :]
        marker = found.group()
        if marker in (CHANNEL, CONSTRAIN):
            self._header += marker
        elif marker == MESSAGE:
            self._open_body(*self._addressed())
        elif marker == START:  # the header was abandoned for a new one
            self._open_header(role_given=True)
        else:  # a message ended before its body began
            self._state = State.BOUNDARY
        return True

    def _not_a_header(self, events: list[Event]) -> bool:
        """When the header holds what no header does, its words were text: content."""
        words = MARKER.sub("", self._header)
        if HEADER_WORDS.fullmatch(words):
            return False
        self._open_body("content")
        self._emit("content", words, events)
        return True

    def _addressed(self) -> tuple[Kind, str]:
        """The kind of message the finished header opens, and the function it calls."""
        header = self._header
        role = ROLE.match(header)
        if self._role_given and role is not None and role.group(1) not in ("", "assistant"):
            return "content", ""  # the model wrote another role's message (a tool's result)
        recipient = RECIPIENT.search(header)
        if recipient is not None:
            namespace, _, function = recipient.group(1).partition(".")
            # A built-in tool (browser.search, python) is not served here: its body is content.
            return ("call", function) if namespace == "functions" else ("content", "")
        channel = CHANNEL_NAME.search(header)
        if channel is not None and channel.group(1) == "analysis":
            return "reasoning", ""
        return "content", ""

    def _read_body(self, events: list[Event], final: bool) -> bool:
        held = self._held
        found = MARKER.search(held)
        if found is None:
            keep = 0 if final else _partial_marker(held)
            self._body(held[: len(held) - keep], events)
            self._held = held[len(held) - keep :]
            if final:
                self._close(events)
            return False
        self._body(held[: found.start()], events)
        self._held = held[found.end() :]
        marker = found.group()
        if marker in (MESSAGE, CONSTRAIN):  # out of place in a body: dropped
            return True
        self._close(events)
        if marker == START:  # a new message without the previous one's end
            self._open_header(role_given=True)
        elif marker == CHANNEL:
            self._open_header(role_given=False)
            self._header = CHANNEL
        return True

    def _open_header(self, *, role_given: bool) -> None:
        self._state, self._header, self._role_given = State.HEADER, "", role_given

    def _open_body(self, kind: Kind, function: str = "") -> None:
        self._state, self._kind, self._function = State.BODY, kind, function
        self._arguments, self._message_said = "", False

    def _body(self, text: str, events: list[Event]) -> None:
        if self._kind == "call":
            self._arguments += text
        else:
            self._emit(self._kind, text, events)

    def _close(self, events: list[Event]) -> None:
        """The message ended: a call is decided now."""
        if self._kind == "call":
            arguments = _json_object(self._arguments)
            if arguments is not None and self.known(self._function):
                events.extend(self.call(self._function, compact(arguments)))
            else:
                self._emit("content", self._arguments, events)
        self._state = State.BOUNDARY

    def _emit(self, part: Part, text: str, events: list[Event]) -> None:
        if not text:
            return
        if not self._message_said and part in self._said:
            text = "\n" + text  # messages of one part are joined by lines, as vLLM joins them
        self._said.add(part)
        self._message_said = True
        events.append((part, text))


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        return loads_object(text)
    except RecursionError:  # json's nesting limit, which base.loads_object lets through
        return None


def _partial_marker(text: str) -> int:
    """Length of the end of ``text`` that may still grow into a marker."""
    return max(partial_suffix(text, marker) for marker in MARKERS)
