"""XML-like calls: Qwen3-Coder / Qwen3.5, GLM 4.5-4.7, MiniMax M2."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tests.chat.tool_parsers.roundtrip import (
    CALLS,
    TEMPLATES,
    TOOLS,
    as_calls,
    check_stream,
    model_says,
    round_trip,
    splits,
    stream,
    template,
)
from tether.chat.messages import Function, ToolCall
from tether.chat.tool_parsers import detect, parser_class
from tether.chat.tool_parsers.base import ToolParser
from tether.chat.tool_parsers.xml_calls import (
    Glm45Parser,
    MiniMaxM2Parser,
    Qwen3CoderParser,
    typed,
)

END = ("<|im_end|>", "<|observation|>", "<|user|>", "[e~[")
FAMILIES: list[tuple[str, type[ToolParser]]] = [
    ("Qwen3-Coder", Qwen3CoderParser),
    ("Qwen3.5-4B", Qwen3CoderParser),
    ("GLM-4.6", Glm45Parser),
    ("GLM-4.7-Flash", Glm45Parser),
    ("MiniMax-M2", MiniMaxM2Parser),
]


def says(name: str, calls: Sequence[ToolCall] = CALLS, **kwargs: Any) -> str:
    """What the model says, past its thinking: Qwen3.5 and GLM write an empty
    ``<think></think>`` (or only ``</think>``, opened by the prompt) before the calls; the
    reasoning splitter takes that part and drops the whitespace after it, so the parser
    sees what follows."""
    said = model_says(template(name), calls, end=END, **kwargs)
    return said.split("</think>", 1)[1].lstrip() if "</think>" in said else said


@pytest.mark.parametrize(("name", "make"), FAMILIES)
def test_family_round_trips(name: str, make: type[ToolParser]) -> None:
    round_trip(make, says(name))


@pytest.mark.parametrize(("name", "make"), FAMILIES)
def test_text_before_the_calls_stays_content(name: str, make: type[ToolParser]) -> None:
    round_trip(make, says(name, content="Let me check."), content="Let me check.")


@pytest.mark.parametrize(("name", "make"), FAMILIES)
def test_values_keep_their_schema_type_through_the_template(
    name: str, make: type[ToolParser]
) -> None:
    # A call with no arguments; a string that looks like a number and keeps its own
    # newlines; a zero and a false (Qwen3-Coder's template writes Python's ``False``).
    calls = (
        ToolCall("now", {}, "call00003"),
        ToolCall("get_weather", {"city": "\n007\n", "days": 0, "metric": False}, "call00004"),
    )
    round_trip(make, says(name, calls), calls)


@pytest.mark.parametrize(("name", "make"), FAMILIES)
def test_the_template_is_detected_as_its_family(name: str, make: type[ToolParser]) -> None:
    assert parser_class(detect((TEMPLATES / f"{name}.jinja").read_text())) is make


TYPES = {
    "text": {"type": "string"},
    "count": {"type": "integer"},
    "ratio": {"type": "number"},
    "flag": {"type": "boolean"},
    "options": {"type": "object"},
    "items": {"type": "array"},
    "limit": {"type": ["integer", "null"]},
    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "anything": {"description": "no type"},
}


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("text", "42", "42"),
        ("text", " Paris \n", " Paris \n"),
        ("text", "null", "null"),
        ("count", "42", 42),
        ("count", " 42 ", 42),
        ("count", "3.0", 3.0),
        ("count", "3.5", "3.5"),
        ("count", "forty", "forty"),
        ("count", "true", "true"),
        ("ratio", "0.5", 0.5),
        ("ratio", "NaN", "NaN"),
        ("ratio", "1e999", "1e999"),
        ("flag", "True", True),
        ("flag", "true", True),
        ("flag", "False", False),
        ("flag", "yes", "yes"),
        ("options", '{"a": [1, null]}', {"a": [1, None]}),
        ("options", "[1]", "[1]"),
        ("items", '["a", 2]', ["a", 2]),
        ("limit", "None", None),
        ("limit", "null", None),
        ("limit", "7", 7),
        ("note", "None", None),
        ("note", "42", "42"),
        ("anything", "42", "42"),
        ("undeclared", '{"a": 1}', '{"a": 1}'),
    ],
)
def test_a_value_is_typed_by_its_schema(key: str, text: str, value: Any) -> None:
    assert typed(text, TYPES.get(key)) == value


def test_parameters_are_typed_in_the_order_written() -> None:
    tools = {"set": Function("set", None, {"type": "object", "properties": TYPES})}
    said = (
        "<tool_call>\n<function=set>\n<parameter=flag>\nTrue\n</parameter>\n"
        "<parameter=text>\n3\n</parameter>\n<parameter=count>\n3\n</parameter>\n"
        "<parameter=extra>\n3\n</parameter>\n</function>\n</tool_call>"
    )
    read = Qwen3CoderParser(tools).read(said)
    assert read.calls[0].arguments == '{"flag":true,"text":"3","count":3,"extra":"3"}'


def test_minimax_writes_several_calls_in_one_section() -> None:
    said = (
        'I will look.\n<minimax:tool_call>\n<invoke name="now">\n</invoke>\n'
        '<invoke name="get_weather">\n<parameter name="city">Köln</parameter>\n'
        '<parameter name="days">2</parameter>\n</invoke>\n</minimax:tool_call>'
    )
    whole = MiniMaxM2Parser(TOOLS).read(said)
    assert whole.content == "I will look."
    assert as_calls(whole) == [("now", {}), ("get_weather", {"city": "Köln", "days": 2})]
    for pieces in splits(said):
        check_stream(stream(MiniMaxM2Parser(TOOLS), pieces), whole, MiniMaxM2Parser.markers)


QWEN_NOW = "<tool_call>\n<function=now>\n</function>\n</tool_call>"
GLM_NOW = "<tool_call>now\n</tool_call>"
MINIMAX_NOW = '<minimax:tool_call>\n<invoke name="now">\n</invoke>\n</minimax:tool_call>'


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (Qwen3CoderParser, "I like <tool_call> tags."),
        (Qwen3CoderParser, QWEN_NOW.replace("now", "send_email")),
        (Qwen3CoderParser, "<tool_call>\n<function=now\n</tool_call>"),
        (Qwen3CoderParser, QWEN_NOW.replace("</function>", "</function>\nDone.")),
        (Qwen3CoderParser, QWEN_NOW.replace("</function>", "<parameter=x>\n1\n</function>")),
        (Qwen3CoderParser, QWEN_NOW.replace("\n</tool_call>", "\n</tool_")),
        (Qwen3CoderParser, QWEN_NOW.replace("</function>", "</function><function=now>")),
        # A value that writes the section's own closer ends the section early: content.
        (
            Qwen3CoderParser,
            '<tool_call>\n<function=get_weather>\n<parameter=city>\nx = "</tool_call>"\n'
            "</parameter>\n</function>\n</tool_call>",
        ),
        (Glm45Parser, "I like <tool_call> tags, they are used by now."),
        (Glm45Parser, GLM_NOW.replace("now", "send_email")),
        (Glm45Parser, "<tool_call></tool_call>"),
        (Glm45Parser, "<tool_call>get_weather\n<arg_key>city</arg_key>\n</tool_call>"),
        (Glm45Parser, "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Par"),
        (Glm45Parser, "<tool_call>now(city='Paris')</tool_call>"),
        (MiniMaxM2Parser, 'Use <invoke name="now"> inside a <minimax:tool_call> block.'),
        (MiniMaxM2Parser, MINIMAX_NOW.replace("now", "send_email")),
        (MiniMaxM2Parser, "<minimax:tool_call>\n</minimax:tool_call>"),
        (MiniMaxM2Parser, MINIMAX_NOW.replace("</invoke>", '<invoke name="now">\n</invoke>')),
        (MiniMaxM2Parser, MINIMAX_NOW.replace("\n</invoke>", "between\n</invoke>")),
        (MiniMaxM2Parser, MINIMAX_NOW.replace("</invoke>\n", "</invoke>\nand then\n")),
        (MiniMaxM2Parser, MINIMAX_NOW.replace('name="now"', "name=now")),
        (MiniMaxM2Parser, '<minimax:tool_call>\n<invoke name="now">\n<parameter name="x">1'),
    ],
)
def test_text_that_only_looks_like_a_call_stays_content(make: type[ToolParser], text: str) -> None:
    whole = make(TOOLS).read(text)
    assert whole.calls == [] and whole.content == text.strip()
    for pieces in splits(text):
        check_stream(stream(make(TOOLS), pieces), whole, ())


@pytest.mark.parametrize(
    ("make", "good", "broken"),
    [
        (Qwen3CoderParser, QWEN_NOW, QWEN_NOW.replace("now", "send_email")),
        (Glm45Parser, GLM_NOW, "<tool_call>now\n<arg_key>x</arg_key>\n</tool_call>"),
        (MiniMaxM2Parser, MINIMAX_NOW, MINIMAX_NOW.replace("now", "now()")),
    ],
)
def test_a_broken_section_after_a_call_is_content_and_the_call_stays(
    make: type[ToolParser], good: str, broken: str
) -> None:
    said = f"{good}\n{broken}"
    whole = make(TOOLS).read(said)
    assert as_calls(whole) == [("now", {})]
    assert whole.content.strip() == broken  # with the newline before it, as the base keeps it
    for pieces in splits(said):
        check_stream(stream(make(TOOLS), pieces), whole, ())


QWEN_CITY = "<tool_call>\n<function=get_weather>\n<parameter=city>\nX\n</parameter>\n"
GLM_CITY = "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>X</arg_value>\n"
MINIMAX_CITY = '<minimax:tool_call>\n<invoke name="get_weather">\n'
MINIMAX_CITY += '<parameter name="city">X</parameter>\n'


@pytest.mark.parametrize(
    ("make", "said"),
    [
        # The answer ended before the closing tags (a stop string, the end-of-turn token):
        # every value is closed, so nothing the call says was cut off.
        (Qwen3CoderParser, QWEN_CITY),
        (Qwen3CoderParser, QWEN_CITY + "</function>\n"),
        (Glm45Parser, GLM_CITY),
        (MiniMaxM2Parser, MINIMAX_CITY),
        (MiniMaxM2Parser, MINIMAX_CITY + "</invoke>\n"),
    ],
)
def test_an_unclosed_call_at_the_end_is_read_when_its_values_are_whole(
    make: type[ToolParser], said: str
) -> None:
    whole = make(TOOLS).read(said)
    assert as_calls(whole) == [("get_weather", {"city": "X"})]
    assert whole.content == ""
    for pieces in splits(said):
        check_stream(stream(make(TOOLS), pieces), whole, make.markers)


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (Qwen3CoderParser, "<tool_call>\n<function=get_weather>\n<parameter=city>\nPar"),
        (Qwen3CoderParser, "<tool_call>\n<function=get_weather>\n<parameter=city>\nX\n</param"),
        (Glm45Parser, "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Par"),
        (MiniMaxM2Parser, '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="ci'),
    ],
)
def test_a_call_cut_inside_a_value_is_content(make: type[ToolParser], said: str) -> None:
    whole = make(TOOLS).read(said)
    assert whole.calls == [] and whole.content == said


@pytest.mark.parametrize(("name", "make"), FAMILIES)
def test_the_markers_are_the_ones_the_template_writes(name: str, make: type[ToolParser]) -> None:
    said = says(name)
    assert set(make.openers) <= set(make.markers)
    assert [marker for marker in make.markers if marker not in said] == []
