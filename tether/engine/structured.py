"""``StructuredOutput``: what generated text must match, in terms any engine can translate.

The API builds it from ``response_format`` and ``tool_choice``; ``tether.engine.guidance``
compiles it into llguidance's grammar, which both engines run. What cannot be enforced
raises ``StructuredOutputError`` (a 400), before any work starts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

ANY_OBJECT: Mapping[str, Any] = {"type": "object"}


@dataclass(frozen=True, slots=True)
class ToolFunction:
    """A function the model may call: its name and the JSON schema of its arguments
    (``None``: any object)."""

    name: str
    parameters: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ThinkingPrefix:
    """Free text a reasoning model writes before the constrained answer.

    The output is its reasoning up to the first ``end`` marker, then the constrained text
    (after at most a little whitespace). ``start`` set: the reasoning is optional and must
    open with ``start`` (a model that writes the start marker itself); ``None``: the output
    begins inside the reasoning (the prompt opened it).
    """

    end: str
    start: str | None = None


@dataclass(frozen=True, slots=True)
class Pattern:
    """Text matching a regular expression, inside a format's markup (Kimi's call counter, a
    newline that some templates of a family write and others do not)."""

    regex: str


Piece = str | Pattern
"""A piece of a format's markup: a ``str`` is written as it is (its special tokens by id)."""
Pieces = tuple[Piece, ...]


@dataclass(frozen=True, slots=True)
class TaggedParameter:
    """One parameter of a call written one tag per parameter: its name, its JSON schema
    (with the ``$defs`` it refers to), whether it is required, and how its value is written:
    ``text`` (bare text, read as a string: the tool's schema allows a string, or says
    nothing) or else JSON matching ``schema``, or one of ``literals`` (Qwen3-Coder's template
    writes Python's ``True`` / ``False`` / ``None``)."""

    key: str
    schema: Mapping[str, Any]
    required: bool
    text: bool
    literals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TaggedArguments:
    """Arguments as one tag per parameter (Qwen3-Coder, GLM, MiniMax): for each parameter,
    in the schema's order, ``key_open`` KEY ``key_close`` VALUE ``value_close``. The first
    piece of ``value_close`` is the closing tag, which a text value never contains.
    ``parameters`` None: any names, values as text (a tool that lists no properties)."""

    key_open: Pieces
    key_close: Pieces
    value_close: Pieces
    parameters: tuple[TaggedParameter, ...] | None


@dataclass(frozen=True, slots=True)
class BareKeyArguments:
    """Arguments in a JSON-like notation whose keys are bare, in sorted order, and whose
    strings sit between ``quote`` marks with nothing escaped; ``None`` is null (Gemma 4:
    ``{city:<|"|>Paris<|"|>,days:3}``)."""

    quote: str


@dataclass(frozen=True, slots=True)
class CallShape:
    """One way the model writes a call in its family's format: ``begin`` (the markup and the
    function's name), the arguments (JSON matching ``parameters``, or written as ``tagged``
    or ``bare_keys`` say), ``end``."""

    begin: Pieces
    parameters: Mapping[str, Any]
    end: Pieces = ()
    tagged: TaggedArguments | None = None
    bare_keys: BareKeyArguments | None = None


@dataclass(frozen=True, slots=True)
class CallSection:
    """Where a format writes calls: ``trigger`` (the free text ends at its first occurrence),
    ``opener``, then a call in one of ``shapes`` (with a ``separator``: one or more, separated
    by it; None: exactly one), then ``closer``."""

    trigger: str
    shapes: tuple[CallShape, ...]
    opener: Pieces = ()
    separator: Pieces | None = None
    closer: Pieces = ()


@dataclass(frozen=True, slots=True)
class LazyCalls:
    """Free text until the model opens a call section (a ``trigger``; with ``at_start``, only
    as the first thing it writes), which must then be whole calls of the section's shapes;
    then free text again, where the next trigger opens the next section (issue 19: with
    ``tool_choice: "auto"``, arguments that always parse): llguidance's lazy rules.
    ``markers``: markup the free text may hold (the format's markers, the reasoning's), which
    a vocabulary may have as special tokens (gpt-oss writes its whole answer in them)."""

    sections: tuple[CallSection, ...]
    at_start: bool = False
    markers: tuple[str, ...] = ()

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(section.trigger for section in self.sections))


@dataclass(frozen=True, slots=True)
class StructuredOutput:
    """Exactly one form:

    - ``json_schema``: JSON text matching the schema (``ANY_OBJECT`` for any JSON object);
    - ``regex``: text matching the regular expression (Python's syntax, whole match);
    - ``choice``: exactly one of the strings;
    - ``tool_call``: exactly ``{"name": <one of the functions>, "arguments": {...}}`` with
      the arguments matching that function's schema;
    - ``lazy_calls``: free text, until the model opens a call in its own format, which then
      must be whole calls of the given shapes (``LazyCalls``).

    With ``thinking``, the form constrains only the answer after a reasoning model's
    reasoning, as vLLM does: the reasoning itself stays free.
    """

    json_schema: Mapping[str, Any] | None = None
    regex: str | None = None
    choice: tuple[str, ...] | None = None
    tool_call: tuple[ToolFunction, ...] | None = None
    lazy_calls: LazyCalls | None = None
    thinking: ThinkingPrefix | None = None

    def __post_init__(self) -> None:
        forms = (self.json_schema, self.regex, self.choice, self.tool_call, self.lazy_calls)
        if sum(form is not None for form in forms) != 1:
            raise ValueError("a StructuredOutput has exactly one of its forms")
        if self.tool_call is not None and not self.tool_call:
            raise ValueError("tool_call needs at least one function")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one string")
        lazy = self.lazy_calls
        if lazy is not None and not (lazy.sections and all(s.shapes for s in lazy.sections)):
            raise ValueError("lazy_calls needs a section, each with a shape")

    @classmethod
    def json_object(cls) -> StructuredOutput:
        return cls(json_schema=ANY_OBJECT)

    def key(self) -> str:
        """A stable text key, for engines that cache what they compile from a spec."""
        return json.dumps(
            {
                "json_schema": self.json_schema,
                "regex": self.regex,
                "choice": self.choice,
                "tool_call": [[f.name, f.parameters] for f in self.tool_call or ()],
                "lazy_calls": None if self.lazy_calls is None else asdict(self.lazy_calls),
                "thinking": None
                if self.thinking is None
                else [self.thinking.start, self.thinking.end],
            },
            sort_keys=True,
            default=str,
        )
