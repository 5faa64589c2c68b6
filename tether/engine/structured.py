"""``StructuredOutput``: what generated text must match, in terms any engine can translate.

The API builds it from ``response_format`` and ``tool_choice``; ``tether.engine.guidance``
compiles it into llguidance's grammar, which both engines run. What cannot be enforced
raises ``StructuredOutputError`` (a 400), before any work starts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
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
class CallShape:
    """One way the model writes a call in its family's format: ``begin`` (the markup and the
    function's name), the arguments as JSON matching ``parameters``, then ``end``."""

    begin: str
    parameters: Mapping[str, Any]
    end: str


@dataclass(frozen=True, slots=True)
class LazyCalls:
    """Free text until the model opens a call (one of ``triggers``, each the start of a
    shape's ``begin``; with ``at_start``, only as the first thing it writes), then one or more
    calls, each in one of ``shapes``, with only whitespace between them (issue 19: with
    ``tool_choice: "auto"``, arguments that always parse): llguidance's lazy rules."""

    triggers: tuple[str, ...]
    shapes: tuple[CallShape, ...]
    at_start: bool = False


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
        if lazy is not None and not (lazy.shapes and lazy.triggers):
            raise ValueError("lazy_calls needs a shape and a trigger")

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
                "lazy_calls": None
                if self.lazy_calls is None
                else [
                    self.lazy_calls.triggers,
                    self.lazy_calls.at_start,
                    [[s.begin, s.parameters, s.end] for s in self.lazy_calls.shapes],
                ],
                "thinking": None
                if self.thinking is None
                else [self.thinking.start, self.thinking.end],
            },
            sort_keys=True,
            default=str,
        )
