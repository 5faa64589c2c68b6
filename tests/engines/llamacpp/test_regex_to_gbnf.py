"""RegexToGbnf: the GBNF it writes (acceptance on real text is in test_grammar.py)."""

from __future__ import annotations

import pytest

from tether.engines.llamacpp.regex_to_gbnf import MAX_REPEAT, RegexToGbnf


@pytest.mark.parametrize(
    ("pattern", "gbnf"),
    [
        (r"^abc$", '"abc"'),
        (r"ab*c", '"a" "b"* "c"'),
        (r"(?:ab|cd)+?", '("ab" | "cd")+'),
        (r"\d{2,4}\.\d{2}", r'[0-9]{2,4} "." [0-9]{2}'),
        (r"\w", "[0-9A-Z_a-z]"),
        (r"\S", r"[^\x09-\x0D ]"),
        (r".", r"[^\x0A]"),
        (r"[^\]\\\-^]", r"[^\-\\-\x5E]"),
        (r'"\\', r'"\"\\"'),
        (r"a{,3}b{2,}c{0}", '"a"{0,3} "b"{2,} ""'),
        (r"x{y}", '"x{y}"'),
        (r"", '""'),
    ],
)
def test_raw_text_gbnf(pattern: str, gbnf: str) -> None:
    assert RegexToGbnf(pattern).convert() == gbnf


def test_json_string_mode_escapes_quotes_and_backslashes_in_literals() -> None:
    assert RegexToGbnf(r'"\\', json_string=True).convert() == r'"\\\"\\\\"'


def test_json_string_mode_writes_forbidden_class_members_as_escapes() -> None:
    # A raw '"' would end the JSON string and a raw newline is invalid JSON (RFC 8259, 7).
    assert RegexToGbnf(r'["\n]', json_string=True).convert() == r'("\\\"" | "\\n")'


def test_json_string_mode_never_writes_raw_control_characters() -> None:
    gbnf = RegexToGbnf(r"[\x00-\x1f]", json_string=True).convert()
    assert gbnf == r'("\\b" | "\\f" | "\\n" | "\\r" | "\\t")'


def test_repetition_counts_are_bounded() -> None:
    RegexToGbnf(f"a{{{MAX_REPEAT}}}").convert()
    with pytest.raises(ValueError, match="repetition"):
        RegexToGbnf(f"a{{{MAX_REPEAT + 1}}}").convert()
