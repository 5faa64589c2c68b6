"""Gemma 4: ``<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3}<tool_call|>``.

The arguments are not JSON but what the chat template's ``format_argument`` macro writes:
keys bare (sorted), strings between ``<|"|>`` markers with nothing escaped, ``true`` and
``false``, numbers and ``None`` as Jinja prints them, objects ``{k:v,…}`` and lists ``[v,…]``.
``ArgumentReader`` reads that back. After its calls the model asks for their results with
``<|tool_response>``, which ends its turn.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from tether.chat.messages import Function
from tether.chat.tool_parsers.base import (
    BareKeyArguments,
    CallFormat,
    CallSection,
    CallShape,
    ParsedCall,
    Section,
    SectionParser,
    compact,
)

TOOL_CALL = Section("<|tool_call>", "<tool_call|>")
TOOL_RESPONSE = Section("<|tool_response>")
STRING = '<|"|>'
KEY = re.compile(r"[^:,{}\[\]<]+")
BARE = re.compile(r"[^,{}\[\]<]+")  # a number, a boolean, None, or an unquoted word
NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
WORDS: Mapping[str, Any] = {"true": True, "false": False, "null": None, "None": None}
MAX_DEPTH = 64  # nesting beyond any real arguments; keeps garbage from exhausting the stack


class ArgumentReader:
    """``call:NAME{…}`` calls in Gemma 4's argument syntax; ``ValueError`` when malformed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every ``call:NAME{…}`` in the text, which holds nothing else but whitespace."""
        found: list[tuple[str, dict[str, Any]]] = []
        while self._skip_space() < len(self.text):
            self._expect("call:")
            brace = self.text.find("{", self.at)
            if brace < 0:
                raise ValueError("a call without arguments")
            name, self.at = self.text[self.at : brace].strip(), brace
            found.append((name, self._mapping(1)))
        return found

    def _value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("nested too deeply")
        self._skip_space()
        if self.text.startswith(STRING, self.at):
            return self._string()
        if self.text.startswith("{", self.at):
            return self._mapping(depth + 1)
        if self.text.startswith("[", self.at):
            return self._sequence(depth + 1)
        return _scalar(self._match(BARE).strip())

    def _mapping(self, depth: int) -> dict[str, Any]:
        self._expect("{")
        result: dict[str, Any] = {}
        while not self._take("}"):
            if result:
                self._expect(",")
            key = self._key()
            self._expect(":")
            result[key] = self._value(depth)
        return result

    def _sequence(self, depth: int) -> list[Any]:
        self._expect("[")
        result: list[Any] = []
        while not self._take("]"):
            if result:
                self._expect(",")
            result.append(self._value(depth))
        return result

    def _key(self) -> str:
        self._skip_space()
        if self.text.startswith(STRING, self.at):  # keys inside values may be quoted
            return self._string()
        key = self._match(KEY).strip()
        if not key:
            raise ValueError("an empty key")
        return key

    def _string(self) -> str:
        start = self.at + len(STRING)
        end = self.text.find(STRING, start)
        if end < 0:
            raise ValueError("an unclosed string")
        self.at = end + len(STRING)
        return self.text[start:end]

    def _match(self, pattern: re.Pattern[str]) -> str:
        found = pattern.match(self.text, self.at)
        if found is None:
            raise ValueError(f"unexpected text at {self.at}")
        self.at = found.end()
        return found.group()

    def _skip_space(self) -> int:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1
        return self.at

    def _take(self, token: str) -> bool:
        self._skip_space()
        if self.text.startswith(token, self.at):
            self.at += len(token)
            return True
        return False

    def _expect(self, token: str) -> None:
        if not self._take(token):
            raise ValueError(f"expected {token!r} at {self.at}")


def _scalar(word: str) -> Any:
    if word in WORDS:
        return WORDS[word]
    if NUMBER.fullmatch(word):
        number = json.loads(word)
        if isinstance(number, float) and not math.isfinite(number):  # 1e400: not JSON
            raise ValueError(f"{word} is out of range")
        return number
    if not word:
        raise ValueError("a missing value")
    return word  # an unquoted word: the string it spells (vLLM's gemma4 reads it so too)


class Gemma4Parser(SectionParser):
    """Gemma 4's ``<|tool_call>call:f{…}<tool_call|>`` blocks, one call a block."""

    name = "gemma4"
    sections: ClassVar[tuple[Section, ...]] = (TOOL_CALL, TOOL_RESPONSE)
    openers = (TOOL_CALL.opener,)
    markers = (TOOL_CALL.opener, TOOL_CALL.closer, STRING, TOOL_RESPONSE.opener)

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat:
        shapes = tuple(
            CallShape(
                (f"call:{tool.name}",),
                tool.parameters or {},
                (),
                bare_keys=BareKeyArguments(STRING),
            )
            for tool in tools
        )
        return CallFormat((CallSection(TOOL_CALL.opener, shapes, closer=(TOOL_CALL.closer,)),))

    def parse_section(self, section: Section, body: str) -> list[ParsedCall] | None:
        if section is TOOL_RESPONSE:
            # The turn ended there; anything after it would be the model imagining results.
            return [] if not body.strip() else None
        try:
            calls = ArgumentReader(body).calls()
        except ValueError:
            return None
        if not calls or not all(self.known(name) for name, _ in calls):
            return None
        return [ParsedCall(name, compact(arguments)) for name, arguments in calls]
