"""DeepSeek: V3 / R1 (``function<｜tool▁sep｜>NAME`` and fenced JSON) and V3.1
(``NAME<｜tool▁sep｜>{…}``)."""

from __future__ import annotations

import json

import pytest

from tests.chat.tool_parsers.roundtrip import (
    CALLS,
    TOOLS,
    as_calls,
    check_stream,
    model_says,
    round_trip,
    splits,
    stream,
    template,
)
from tether.chat.messages import ToolCall
from tether.chat.tool_parsers.deepseek import DeepSeekV3Parser, DeepSeekV31Parser

END = ("<｜end▁of▁sentence｜>",)
BEGIN, CLOSE = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"


# The V3.1 and R1-distill templates do not reference ``tools``, and Tether has rendered such
# templates' calls in its own <tool_call> form, where ``model_says`` does not show their
# format. So these functions write a call exactly as the templates' own code does (``tojson``
# is ``json.dumps(ensure_ascii=False)``, as Tether's and HF's filter).
def v31_call(call: ToolCall) -> str:
    """deepseek-ai-DeepSeek-V3.1.jinja: ``'<｜tool▁call▁begin｜>' + name + '<｜tool▁sep｜>' +
    arguments | tojson + '<｜tool▁call▁end｜>'``."""
    arguments = json.dumps(dict(call.arguments), ensure_ascii=False)
    return f"<｜tool▁call▁begin｜>{call.name}<｜tool▁sep｜>{arguments}<｜tool▁call▁end｜>"


def r1_call(call: ToolCall) -> str:
    """The R1 distills and llama.cpp's R1 template: ``'<｜tool▁call▁begin｜>' + type +
    '<｜tool▁sep｜>' + name + '\\n```json\\n' + arguments + '\\n```<｜tool▁call▁end｜>'``."""
    arguments = json.dumps(dict(call.arguments), ensure_ascii=False)
    block = f"function<｜tool▁sep｜>{call.name}\n```json\n{arguments}\n```"
    return f"<｜tool▁call▁begin｜>{block}<｜tool▁call▁end｜>"


V31_SAID = BEGIN + "".join(v31_call(call) for call in CALLS) + CLOSE
# Calls are separated by "\n" in R1's templates.
R1_SAID = BEGIN + "\n".join(r1_call(call) for call in CALLS) + CLOSE


def test_v31_reads_what_its_template_writes() -> None:
    round_trip(DeepSeekV31Parser, V31_SAID)


def test_v31_keeps_the_content_before_its_calls() -> None:
    # V3.1's template writes a turn's content right before the section.
    round_trip(DeepSeekV31Parser, "Let me check." + V31_SAID, content="Let me check.")


def test_v31_reads_arguments_a_template_wrote_as_a_json_string() -> None:
    # V3.1's template ``tojson``s the arguments: a client's string arguments come out quoted.
    said = call_v31("get_weather", json.dumps(json.dumps({"city": "X"})))
    assert as_calls(DeepSeekV31Parser(TOOLS).read(said)) == [("get_weather", {"city": "X"})]


@pytest.mark.parametrize(
    "said",
    [
        # deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja; also llama-cpp-deepseek-r1.jinja,
        # whose render raises with tools ("Object of type generator is not JSON serializable":
        # its ``tools | map(attribute='function') | tojson`` hands a generator to tojson).
        R1_SAID,
        # deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja closes the section only after a
        # second call: a single call ends with the end-of-sentence token.
        BEGIN + r1_call(CALLS[0]),
    ],
)
def test_r1_reads_what_its_templates_write(said: str) -> None:
    calls = CALLS if CLOSE in said else CALLS[:1]
    round_trip(DeepSeekV3Parser, said, calls)


def test_r1_reads_calls_after_its_thinking() -> None:
    # The reasoning splitter takes "<think>…</think>"; the parser sees what follows.
    said = "<think>\nThe user wants the weather.\n</think>\n\n" + R1_SAID
    round_trip(DeepSeekV3Parser, said.split("</think>", 1)[1])


def test_v32_writes_another_format() -> None:
    # V3.2 (and V4) write "<｜DSML｜function_calls>" XML, which neither parser reads as calls.
    said = model_says(template("deepseek-ai-DeepSeek-V3.2"), end=END).split("</think>", 1)[1]
    assert "<｜DSML｜function_calls>" in said
    for make in (DeepSeekV3Parser, DeepSeekV31Parser):
        assert make(TOOLS).read(said).calls == []


def call_v31(name: str, arguments: str) -> str:
    return f"{BEGIN}<｜tool▁call▁begin｜>{name}<｜tool▁sep｜>{arguments}<｜tool▁call▁end｜>{CLOSE}"


def call_v3(kind: str, name: str, arguments: str) -> str:
    block = f"{kind}<｜tool▁sep｜>{name}\n```json\n{arguments}\n```"
    return f"{BEGIN}<｜tool▁call▁begin｜>{block}<｜tool▁call▁end｜>{CLOSE}"


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (DeepSeekV31Parser, call_v31("send_email", "{}")),
        (DeepSeekV31Parser, call_v31("now", '{"x": ')),
        (DeepSeekV31Parser, call_v31("now", "[1]")),
        (DeepSeekV31Parser, call_v31("now", '{"x": NaN}')),
        (DeepSeekV31Parser, call_v31("now", "{}").replace(BEGIN, BEGIN + "Sure: ")),
        (DeepSeekV31Parser, call_v31("now", "{}").replace("<｜tool▁call▁end｜>", "")),
        (DeepSeekV31Parser, call_v31("now", "{}").replace("<｜tool▁sep｜>", "")),
        (DeepSeekV31Parser, f"{BEGIN}Sorry, no tools.{CLOSE}"),
        (DeepSeekV31Parser, R1_SAID),  # V3's form is not V3.1's
        (DeepSeekV3Parser, V31_SAID),
        (DeepSeekV3Parser, call_v3("function", "send_email", "{}")),
        (DeepSeekV3Parser, call_v3("code", "now", "{}")),
        (DeepSeekV3Parser, call_v3("function", "now", "{")),
        (DeepSeekV3Parser, call_v3("function", "now", "{}").replace("```json", "")),
        (DeepSeekV3Parser, f"DeepSeek writes {BEGIN} before its calls."),
        (DeepSeekV3Parser, "A <｜tool▁calls▁begin"),
    ],
)
def test_text_that_only_looks_like_a_call_stays_content(
    make: type[DeepSeekV3Parser], text: str
) -> None:
    whole = make(TOOLS).read(text)
    assert whole.calls == [] and whole.content == text.strip()
    for pieces in splits(text):
        check_stream(stream(make(TOOLS), pieces), whole, ())


def test_text_after_the_section_stays_content() -> None:
    said = "Checking.\n" + call_v31("now", "{}") + "\nDone."
    whole = DeepSeekV31Parser(TOOLS).read(said)
    assert as_calls(whole) == [("now", {})]
    assert whole.content == "Checking.\nDone."
    for pieces in splits(said):
        check_stream(stream(DeepSeekV31Parser(TOOLS), pieces), whole, DeepSeekV31Parser.markers)
