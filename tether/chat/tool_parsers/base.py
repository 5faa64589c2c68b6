"""What every tool-call parser is: an incremental reader of one choice's content.

A model writes its calls in its family's own markup (``<tool_call>…</tool_call>``,
``[TOOL_CALLS]…``, ``<｜tool▁calls▁begin｜>…``). A parser is fed the choice's text as it is
released and returns events in order: ``("content", text)`` pieces, ``CallStart`` (the
function's name, and the id when the format carries one) and ``CallArguments`` (a piece of
the call's arguments, compact JSON). The same state machine serves a whole answer
(``read``: feed everything, then ``finish``) and a stream, so both always agree (the peers'
streaming bugs come from re-parsing the whole text on every delta; ``shared/docs/style.md``).

The rules every format keeps (issue 19):
- text before, between and after calls stays content; markup that turns out not to be a
  valid call of a known tool is released as content, never dropped;
- a call's name is sent before its arguments, and the argument pieces of a call concatenate
  to exactly the arguments of the whole answer;
- no marker ever reaches content: text that could still grow into an opening marker is held
  back, and whitespace that only separates calls is dropped.

``SectionParser`` implements this for the common shape (an opening marker, a body, a closing
marker or the end of the answer); a family supplies its ``Section`` markers and how to read
a body.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tether.chat.messages import Function
from tether.chat.reasoning import Part, partial_suffix


@dataclass(frozen=True, slots=True)
class CallStart:
    """A call opens: its position among the choice's calls, its function, the model's id."""

    index: int
    name: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class CallArguments:
    """A piece of call ``index``'s arguments (compact JSON text, in order)."""

    index: int
    delta: str


Event = tuple[Part, str] | CallStart | CallArguments


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """A whole call: what the answer's ``tool_calls`` carry."""

    name: str
    arguments: str  # compact JSON text of an object, as OpenAI's wire carries it
    id: str | None = None


# How a family writes its calls, for constraining the calls a model opens on its own (issue
# 19, part 5). These mirror ``tether.engine.structured``'s types of the same names (the chat
# layer does not import the engine's); ``tether.api.endpoints.tools`` hands them over.


@dataclass(frozen=True, slots=True)
class Pattern:
    """Markup text matching a regular expression (a call counter, an optional newline)."""

    regex: str


Pieces = tuple["str | Pattern", ...]


@dataclass(frozen=True, slots=True)
class TaggedParameter:
    """A parameter written as its own tag: bare ``text`` (read as a string) or JSON of its
    ``schema`` (or one of ``literals``, the template's spelling of true, false, null)."""

    key: str
    schema: Mapping[str, Any]
    required: bool
    text: bool
    literals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TaggedArguments:
    """Per parameter, in the schema's order: ``key_open`` KEY ``key_close`` VALUE
    ``value_close`` (whose first piece is the value's closing tag); ``parameters`` None:
    any names, text values."""

    key_open: Pieces
    key_close: Pieces
    value_close: Pieces
    parameters: tuple[TaggedParameter, ...] | None


@dataclass(frozen=True, slots=True)
class BareKeyArguments:
    """Arguments with bare keys (sorted) and strings between ``quote`` marks (Gemma 4)."""

    quote: str


@dataclass(frozen=True, slots=True)
class CallShape:
    """``begin`` (markup and the function's name), the arguments (JSON of ``parameters``,
    or ``tagged``, or ``bare_keys``), ``end``."""

    begin: Pieces
    parameters: Mapping[str, Any]
    end: Pieces = ()
    tagged: TaggedArguments | None = None
    bare_keys: BareKeyArguments | None = None


@dataclass(frozen=True, slots=True)
class CallSection:
    """``trigger`` opens it; ``opener``, calls of ``shapes`` (one, or with a ``separator``
    several), ``closer``."""

    trigger: str
    shapes: tuple[CallShape, ...]
    opener: Pieces = ()
    separator: Pieces | None = None
    closer: Pieces = ()


@dataclass(frozen=True, slots=True)
class CallFormat:
    """The sections a family writes calls in; ``at_start``: a call only opens the answer."""

    sections: tuple[CallSection, ...]
    at_start: bool = False


@dataclass(frozen=True, slots=True)
class ReadChoice:
    """A whole answer, read: its reasoning (None if none), content and calls."""

    reasoning: str | None
    content: str
    calls: list[ParsedCall]


def compact(arguments: Mapping[str, Any]) -> str:
    """Arguments as the wire carries them."""
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))


def collect(events: Iterable[Event]) -> ReadChoice:
    """Events folded into the whole answer they describe."""
    parts: dict[str, list[str]] = {"reasoning": [], "content": []}
    calls: list[tuple[CallStart, list[str]]] = []
    for event in events:
        if isinstance(event, CallStart):
            calls.append((event, []))
        elif isinstance(event, CallArguments):
            calls[event.index][1].append(event.delta)
        else:
            parts[event[0]].append(event[1])
    reasoning = "".join(parts["reasoning"])
    return ReadChoice(
        reasoning or None,
        "".join(parts["content"]),
        [ParsedCall(start.name, "".join(args), start.id) for start, args in calls],
    )


class ToolParser(ABC):
    """Reads one choice's content; a new instance per choice.

    ``name`` is the parser's registry name (vLLM's ``--tool-call-parser`` names);
    ``openers`` are the texts that open a call, which also end a model's reasoning when they
    appear inside it; ``markers`` are every marker the format uses, so the engine can show
    them when the model's vocabulary has them as special tokens.
    """

    name: ClassVar[str]
    openers: ClassVar[tuple[str, ...]] = ()
    markers: ClassVar[tuple[str, ...]] = ()
    # The format carries reasoning too (harmony's analysis channel): its parser reads every
    # answer, with tools or without, and no reasoning splitter runs before it.
    reasons: ClassVar[bool] = False

    def __init__(self, tools: Mapping[str, Function]) -> None:
        self.tools = tools
        self.calls = 0  # calls started so far
        self._held = ""  # text fed but not yet consumed

    def feed(self, text: str) -> list[Event]:
        """Events that ``text`` (the next released piece of the choice) makes certain."""
        self._held += text
        events: list[Event] = []
        while self._step(events, final=False):
            pass
        return events

    def finish(self) -> list[Event]:
        """The answer ended: everything still held, as calls or content."""
        events: list[Event] = []
        while self._step(events, final=True):
            pass
        self._flush(events)
        return events

    @abstractmethod
    def _step(self, events: list[Event], final: bool) -> bool:
        """Consume from ``_held`` what can be decided now (``final``: the answer ended),
        appending its events; True when something was consumed (then it is called again)."""

    def _flush(self, events: list[Event]) -> None:  # noqa: B027 (a hook; most need none)
        """At the end, after the last step: anything the format still holds back."""

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat | None:
        """How the format writes calls of ``tools``, to constrain the calls the model opens;
        None: they are not constrained."""
        return None

    def read(self, text: str) -> ReadChoice:
        """A whole answer."""
        return collect([*self.feed(text), *self.finish()])

    def call(self, name: str, arguments: str, id: str | None = None) -> list[Event]:
        """Events of one whole call."""
        index = self.calls
        self.calls += 1
        return [CallStart(index, name, id), CallArguments(index, arguments)]

    def known(self, name: str) -> bool:
        return name in self.tools

    @property
    def reasoning_active(self) -> bool:
        """Whether text fed now is reasoning (for formats that carry it)."""
        return False


@dataclass(frozen=True, slots=True)
class Section:
    """Where calls are written: after ``opener``, up to ``closer`` (or to the end of the
    answer when ``closer`` is empty). ``at_start``: the opener counts only at the very start
    of the answer (bare JSON calls, where ``{`` anywhere else is just text)."""

    opener: str
    closer: str = ""
    at_start: bool = False


class SectionParser(ToolParser):
    """Content, then ``sections`` of calls. ``parse_section`` reads a section's body into
    calls; a body it refuses is released as content, markers and all."""

    sections: ClassVar[tuple[Section, ...]]

    def __init__(self, tools: Mapping[str, Function]) -> None:
        super().__init__(tools)
        self._section: Section | None = None  # the section being read
        self._space = ""  # whitespace after content, dropped if a call follows
        self._started = False  # any content or call seen

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "sections" in cls.__dict__ and "openers" not in cls.__dict__:
            cls.openers = tuple(section.opener for section in cls.sections)

    @abstractmethod
    def parse_section(self, section: Section, body: str) -> list[ParsedCall] | None:
        """The calls in a section's body, or None when it is not valid calls of known tools
        (then the section is content)."""

    def _flush(self, events: list[Event]) -> None:
        if self._space and not self.calls:
            events.append(("content", self._space))
        self._space = ""

    def _step(self, events: list[Event], final: bool) -> bool:
        """Consume what can be decided now; True when something was consumed."""
        if self._section is not None:
            return self._read_section(events, final)
        held = self._held
        if not held:
            return False
        at, section = self._find_section(held)
        if section is not None:
            self._content(held[:at], events)
            self._section = section
            self._held = held[at + len(section.opener) :]
            return True
        keep = 0 if final else self._undecided(held)
        self._content(held[: len(held) - keep], events)
        self._held = held[len(held) - keep :]
        return False

    def _open_sections(self) -> list[Section]:
        return [s for s in self.sections if not (s.at_start and (self._started or self.calls))]

    def _find_section(self, held: str) -> tuple[int, Section | None]:
        best: tuple[int, Section | None] = (-1, None)
        for section in self._open_sections():
            if section.at_start:
                head = held.lstrip()
                at = len(held) - len(head) if head.startswith(section.opener) else -1
            else:
                at = held.find(section.opener)
            if at >= 0 and (best[1] is None or at < best[0]):
                best = (at, section)
        return best

    def _undecided(self, held: str) -> int:
        """How much of the end of ``held`` may still become an opener."""
        keep = 0
        for section in self._open_sections():
            if section.at_start:
                if section.opener.startswith(held.lstrip()):
                    return len(held)
            else:
                keep = max(keep, partial_suffix(held, section.opener))
        return keep

    def _read_section(self, events: list[Event], final: bool) -> bool:
        section, held = self._section, self._held
        assert section is not None
        end = held.find(section.closer) if section.closer else -1
        if end < 0 and not final:
            return False
        body, rest = (held, "") if end < 0 else (held[:end], held[end + len(section.closer) :])
        calls = self.parse_section(section, body)
        self._section, self._held = None, rest
        if calls is None:
            self._content(section.opener + held[: len(held) - len(rest)], events)
        else:
            self._space = ""  # whitespace before a call separates, it is not content
            self._started = True
            for call in calls:
                events.extend(self.call(call.name, call.arguments, call.id))
        return True

    def _content(self, text: str, events: list[Event]) -> None:
        """Release content; trailing whitespace waits to see whether a call follows."""
        if not text:
            return
        text = self._space + text
        body = text.rstrip()
        self._space = text[len(body) :]
        if body:
            self._started = True
            events.append(("content", body))


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond a double")
    return value


def _not_json(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


# Arguments go on the wire as JSON: NaN, Infinity and numbers beyond a double (``1e999``)
# cannot (issue 22), so markup holding them is no call.
_STRICT = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)


def decode_json(text: str, position: int = 0) -> tuple[Any, int]:
    """The JSON value at ``position`` and where it ends; ``ValueError`` for what is not
    JSON the wire can carry (including nesting beyond the parser's recursion limit)."""
    try:
        return _STRICT.raw_decode(text, position)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def loads_json(text: str) -> Any:
    """``text`` as one JSON value (whitespace around it allowed); ``ValueError`` otherwise."""
    value, end = decode_json(text, len(text) - len(text.lstrip()))
    if text[end:].strip():
        raise ValueError("extra data after the JSON value")
    return value


def loads_object(text: str) -> dict[str, Any] | None:
    """``text`` as a JSON object, or None."""
    try:
        value = loads_json(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
