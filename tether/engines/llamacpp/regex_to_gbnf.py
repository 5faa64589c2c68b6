"""Translate a regular expression into a GBNF expression for llama.cpp's grammar sampler.

llama-cpp-python ships a converter for JSON-schema ``pattern`` (``SchemaConverter._visit_pattern``,
a port of llama.cpp's ``json_schema_to_grammar.py``), but it copies escapes such as ``\\d`` or
``\\.`` into GBNF literals, where llama.cpp's parser rejects them ("unknown escape"), and it does
not escape ``"`` when asked for raw text. This converter covers the common subset instead:
literals and escapes, ``.``, classes (``[a-z]``, ``[^...]``, ``\\d \\w \\s`` and negations),
groups (``(...)``, ``(?:...)``, ``(?P<name>...)``), ``|``, ``? * + {m} {m,} {m,n}`` (lazy
``?`` suffixes are ignored: for a whole-text match they accept the same texts). Anchors
``^ $ \\A \\Z`` are ignored, because the grammar always matches the whole output. Lookarounds,
backreferences, word boundaries, inline flags and possessive quantifiers raise ``ValueError``.

Semantics follow Python's ``re`` with ASCII classes: ``.`` is any character but ``\\n``, ``\\d``
is ``[0-9]``, ``\\w`` is ``[A-Za-z0-9_]``, ``\\s`` is ``[ \\t\\n\\r\\f\\v]``.

With ``json_string=True`` the expression produces the *inside* of a JSON string whose decoded
value matches the pattern: literal characters come out JSON-escaped where JSON requires it, and
classes and ``.`` produce ``"``, ``\\`` and the controls ``\\b \\f \\n \\r \\t`` as escapes and no
other control character.
Grammar syntax: https://github.com/ggml-org/llama.cpp/blob/master/grammars/README.md
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

MAX_REPEAT = 1000
"""Largest ``{m,n}`` count: llama.cpp expands repetitions into copies, so counts cost memory."""

_MAX_CODE_POINT = 0x10FFFF
_Ranges = list[tuple[int, int]]

_DIGIT: _Ranges = [(0x30, 0x39)]
_WORD: _Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE: _Ranges = [(0x09, 0x0D), (0x20, 0x20)]
_CLASS_ESCAPES = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}
_HEX_ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}
_ANCHORS = "AZ"
_UNSUPPORTED_ESCAPES = "bBG0123456789"
_QUANTIFIER = re.compile(r"\{(\d*)(,?)(\d*)\}")

# JSON strings may not hold control characters or unescaped '"' and '\' (RFC 8259, section 7).
_JSON_FORBIDDEN_RAW: _Ranges = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)]
_JSON_ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r"}
_JSON_ESCAPES[0x09] = "\\t"


@dataclass(frozen=True, slots=True)
class _Fragment:
    """A piece of GBNF. ``text`` is set when the piece is a plain literal (so it can merge)."""

    gbnf: str
    text: str | None = None


class RegexToGbnf:
    """Converts one pattern; ``convert()`` returns the GBNF expression or raises ``ValueError``."""

    def __init__(self, pattern: str, *, json_string: bool = False) -> None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        self._pattern = pattern
        self._pos = 0
        self._json = json_string

    def convert(self) -> str:
        fragment = self._alternation()
        if self._pos != len(self._pattern):
            raise ValueError(f"unbalanced ')' at index {self._pos}")
        return fragment.gbnf

    # --- parsing: alternation > sequence > quantified atom -------------------------------------

    def _peek(self, offset: int = 0) -> str | None:
        index = self._pos + offset
        return self._pattern[index] if index < len(self._pattern) else None

    def _take(self) -> str:
        char = self._pattern[self._pos]
        self._pos += 1
        return char

    def _alternation(self) -> _Fragment:
        branches = [self._sequence()]
        while self._peek() == "|":
            self._pos += 1
            branches.append(self._sequence())
        if len(branches) == 1:
            return branches[0]
        return _Fragment(" | ".join(branch.gbnf for branch in branches))

    def _sequence(self) -> _Fragment:
        parts: list[_Fragment] = []
        while (char := self._peek()) is not None and char not in "|)":
            part = self._quantified()
            previous = parts[-1].text if parts else None
            if previous is not None and part.text is not None:
                parts[-1] = self._literal(previous + part.text)
            else:
                parts.append(part)
        parts = [part for part in parts if part.text != ""]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return self._literal("")
        return _Fragment(" ".join(part.gbnf for part in parts))

    def _quantified(self) -> _Fragment:
        atom = self._atom()
        bounds = self._quantifier()
        if bounds is None:
            return atom
        if self._peek() == "?":
            self._pos += 1
        elif self._peek() == "+":
            raise ValueError("possessive quantifiers are not supported")
        return _Fragment(_repeat(atom.gbnf, *bounds))

    def _quantifier(self) -> tuple[int, int | None] | None:
        char = self._peek()
        simple = {"?": (0, 1), "*": (0, None), "+": (1, None)}
        if char in simple:
            self._pos += 1
            return simple[char]
        match = _QUANTIFIER.match(self._pattern, self._pos) if char == "{" else None
        if match is None or not (match.group(1) or match.group(2)):
            return None  # Python reads a '{' that starts no quantifier as a literal
        self._pos = match.end()
        low = int(match.group(1) or 0)
        high = low if not match.group(2) else int(match.group(3)) if match.group(3) else None
        if max(low, high or 0) > MAX_REPEAT:
            raise ValueError(f"repetition counts above {MAX_REPEAT} are not supported")
        return low, high

    def _atom(self) -> _Fragment:
        char = self._take()
        if char == "(":
            return self._group()
        if char == "[":
            return self._char_set(self._class_ranges())
        if char == ".":
            return self._char_set(_complement([(0x0A, 0x0A)]))
        if char in "^$":
            return self._literal("")
        if char == "\\":
            return self._escape()
        return self._literal(char)

    def _group(self) -> _Fragment:
        if self._pattern.startswith("?:", self._pos):
            self._pos += 2
        elif self._pattern.startswith("?P<", self._pos):
            self._pos = self._pattern.index(">", self._pos) + 1
        elif self._peek() == "?":
            raise ValueError(
                f"unsupported group syntax at index {self._pos - 1} "
                "(lookarounds, inline flags and backreferences have no grammar equivalent)"
            )
        inner = self._alternation()
        self._pos += 1  # the ')' (re.compile has checked the parentheses balance)
        return _Fragment(f"({inner.gbnf})", inner.text)

    def _escape(self) -> _Fragment:
        char = self._peek()
        if char is not None and char in _ANCHORS:
            self._pos += 1
            return self._literal("")
        if char is not None and char in _UNSUPPORTED_ESCAPES:
            raise ValueError(f"unsupported escape '\\{char}' (boundaries and backreferences)")
        ranges = self._set_escape()
        if ranges is not None:
            return self._char_set(ranges)
        return self._literal(self._char_escape())

    def _set_escape(self) -> _Ranges | None:
        """``\\d \\w \\s`` and their upper-case negations, or None (the position is unchanged)."""
        char = self._peek()
        if char is None or char.lower() not in _CLASS_ESCAPES:
            return None
        self._pos += 1
        ranges = _CLASS_ESCAPES[char.lower()]
        return _complement(ranges) if char.isupper() else ranges

    def _char_escape(self) -> str:
        char = self._take()
        if char in _CHAR_ESCAPES:
            return _CHAR_ESCAPES[char]
        if char in _HEX_ESCAPE_DIGITS:
            digits = _HEX_ESCAPE_DIGITS[char]
            self._pos += digits
            return chr(int(self._pattern[self._pos - digits : self._pos], 16))
        if char == "N":
            end = self._pattern.index("}", self._pos)
            name = self._pattern[self._pos + 1 : end]
            self._pos = end + 1
            return unicodedata.lookup(name)
        return char  # an escaped punctuation character stands for itself

    def _class_ranges(self) -> _Ranges:
        negated = self._peek() == "^"
        if negated:
            self._pos += 1
        ranges: _Ranges = []
        first = True
        while first or self._peek() != "]":
            first = False
            ranges.extend(self._class_item())
        self._pos += 1
        return _complement(ranges) if negated else _normalize(ranges)

    def _class_item(self) -> _Ranges:
        low = self._class_char()
        if isinstance(low, list):
            return low
        if self._peek() == "-" and self._peek(1) not in (None, "]"):
            self._pos += 1
            high = self._class_char()
            if isinstance(high, list):
                raise ValueError("a class range cannot end in a class escape")
            return [(ord(low), ord(high))]
        return [(ord(low), ord(low))]

    def _class_char(self) -> str | _Ranges:
        char = self._take()
        if char != "\\":
            return char
        if self._peek() == "b":
            self._pos += 1
            return "\b"  # inside a class, \b is backspace (Python re)
        return self._set_escape() or self._char_escape()

    # --- emitting ---------------------------------------------------------------------------

    def _literal(self, text: str) -> _Fragment:
        escaped = json.dumps(text, ensure_ascii=False)[1:-1] if self._json else text
        return _Fragment(gbnf_literal(escaped), text)

    def _char_set(self, ranges: _Ranges) -> _Fragment:
        if not self._json:
            return _Fragment(_char_class(ranges))
        raw = _subtract(ranges, _JSON_FORBIDDEN_RAW)
        options = [_char_class(raw)] if raw else []
        for code_point, escape in _JSON_ESCAPES.items():
            if _contains(ranges, code_point):
                options.append(gbnf_literal(escape))
        if not options:
            raise ValueError("a character class of the pattern matches nothing in a JSON string")
        return _Fragment(options[0] if len(options) == 1 else f"({' | '.join(options)})")


def _repeat(gbnf: str, low: int, high: int | None) -> str:
    if high == 0:
        return '""'
    if (low, high) == (0, 1):
        return f"{gbnf}?"
    if high is None:
        return f"{gbnf}*" if low == 0 else f"{gbnf}+" if low == 1 else f"{gbnf}{{{low},}}"
    return f"{gbnf}{{{low}}}" if low == high else f"{gbnf}{{{low},{high}}}"


# llama.cpp's parse_char accepts these escapes (and \x \u \U) but not "\^": '^' goes as hex.
_LITERAL_SPECIALS = {'"': '\\"', "\\": "\\\\"}
_CLASS_SPECIALS = {"\\": "\\\\", "]": "\\]", "[": "\\[", "-": "\\-", "^": "\\x5E"}


def gbnf_literal(text: str) -> str:
    return '"' + "".join(_gbnf_char(ord(char), _LITERAL_SPECIALS) for char in text) + '"'


def _gbnf_char(code_point: int, specials: dict[str, str]) -> str:
    """One character as GBNF source; ``specials`` are escaped as the current context needs."""
    char = chr(code_point)
    if char in specials:
        return specials[char]
    if 0x20 <= code_point < 0x7F or (
        code_point >= 0x80 and char.isprintable() and not 0xD800 <= code_point <= 0xDFFF
    ):
        return char
    if code_point <= 0xFF:
        return f"\\x{code_point:02X}"
    return f"\\u{code_point:04X}" if code_point <= 0xFFFF else f"\\U{code_point:08X}"


def _char_class(ranges: _Ranges) -> str:
    """A GBNF class for ``ranges``, written negated when that is shorter."""
    complement = _complement(ranges)
    negated = len(complement) < len(ranges) or not ranges
    items = complement if negated else ranges
    body = "".join(
        _gbnf_char(low, _CLASS_SPECIALS)
        + ("" if low == high else "-" + _gbnf_char(high, _CLASS_SPECIALS))
        for low, high in items
    )
    return f"[^{body}]" if negated else f"[{body}]"


def _normalize(ranges: _Ranges) -> _Ranges:
    merged: _Ranges = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _complement(ranges: _Ranges) -> _Ranges:
    result: _Ranges = []
    start = 0
    for low, high in _normalize(ranges):
        if low > start:
            result.append((start, low - 1))
        start = high + 1
    if start <= _MAX_CODE_POINT:
        result.append((start, _MAX_CODE_POINT))
    return result


def _subtract(ranges: _Ranges, removed: _Ranges) -> _Ranges:
    return _complement(_complement(ranges) + removed)


def _contains(ranges: _Ranges, code_point: int) -> bool:
    return any(low <= code_point <= high for low, high in ranges)
