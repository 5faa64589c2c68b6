"""gpt-oss's harmony messages: reasoning, preambles, calls and the final answer."""

from __future__ import annotations

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
from tether.chat.tool_parsers.base import CallArguments, CallStart, ParsedCall, ReadChoice
from tether.chat.tool_parsers.harmony import MARKERS, HarmonyParser

GPT_OSS = "openai-gpt-oss-120b"
END = ("<|return|>",)  # <|call|> ends a call turn too, but it belongs to the call
CALL = "<|channel|>commentary to=functions.now <|constrain|>json<|message|>{}<|call|>"


def read(text: str) -> ReadChoice:
    return HarmonyParser(TOOLS).read(text)


def check_splits(text: str) -> ReadChoice:
    """The whole read, after checking that every split of ``text`` streams the same."""
    whole = read(text)
    for pieces in splits(text):
        check_stream(stream(HarmonyParser(TOOLS), pieces), whole, MARKERS)
    return whole


def test_the_templates_call_round_trips() -> None:
    # The template renders one call a message (tool_calls[0]), with to= in the role header.
    said = model_says(template(GPT_OSS), end=END)
    assert said.startswith(" to=functions.get_weather<|channel|>commentary json<|message|>")
    assert said.count("<|call|>") == 1
    round_trip(HarmonyParser, said, CALLS[:1])
    round_trip(HarmonyParser, model_says(template(GPT_OSS), CALLS[1:], end=END), CALLS[1:])


def test_reasoning_then_a_call_round_trips() -> None:
    # A tool-call turn's content is rendered as its analysis message, before the call.
    said = model_says(template(GPT_OSS), CALLS[:1], content="I need Paris's weather.", end=END)
    assert said.startswith("<|channel|>analysis<|message|>I need Paris's weather.<|end|>")
    round_trip(HarmonyParser, said, CALLS[:1])
    assert check_splits(said).reasoning == "I need Paris's weather."


def test_reasoning_then_a_final_answer_from_the_templates_pieces() -> None:
    chat = template(GPT_OSS)
    with_call = model_says(chat, CALLS[:1], content="Just answer.", end=END)
    analysis = with_call.split("<|start|>", 1)[0]
    final = model_says(chat, (), content="It is sunny.")
    assert final == "<|channel|>final<|message|>It is sunny.<|return|>"
    whole = check_splits(analysis + "<|start|>assistant" + final)
    assert whole == ReadChoice("Just answer.", "It is sunny.", [])


def test_preamble_then_calls_each_in_its_message() -> None:
    said = (
        "<|channel|>analysis<|message|>Two cities.<|end|>"
        "<|start|>assistant<|channel|>commentary<|message|>Checking both.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city": "Paris", "days": 3, "metric": true}<|call|>'
        "<|start|>assistant to=functions.get_weather<|channel|>commentary json"
        '<|message|>{"city": "Köln \\"am Rhein\\""}<|call|>'
    )
    whole = check_splits(said)
    assert whole.reasoning == "Two cities." and whole.content == "Checking both."
    assert as_calls(whole) == [(c.name, dict(c.arguments)) for c in CALLS]


def test_reasoning_and_content_stream_as_they_arrive() -> None:
    parser = HarmonyParser(TOOLS)
    assert parser.feed("<|channel|>analysis<|message|>Thin") == [("reasoning", "Thin")]
    assert parser.reasoning_active
    assert parser.feed("king<|e") == [("reasoning", "king")]  # "<|e" may be <|end|>
    assert parser.feed("nd|><|start|>assistant<|channel|>final<|message|>Hi") == [("content", "Hi")]
    assert not parser.reasoning_active
    assert parser.feed(" there<|return|>") + parser.finish() == [("content", " there")]


def test_a_call_is_sent_when_it_ends_and_its_name_comes_first() -> None:
    parser = HarmonyParser(TOOLS)
    assert parser.feed(CALL[:-3]) == []
    assert parser.feed(CALL[-3:]) == [CallStart(0, "now"), CallArguments(0, "{}")]
    # A body that is a whole object still counts when the answer ends without <|call|>.
    assert as_calls(read(CALL.removesuffix("<|call|>"))) == [("now", {})]


def test_plain_text_with_no_harmony_is_content() -> None:
    assert read("The answer is 42.") == ReadChoice(None, "The answer is 42.", [])
    assert HarmonyParser(TOOLS).feed("Hello") == [("content", "Hello")]
    assert check_splits("to be or not").content == "to be or not"


def test_messages_of_one_part_are_joined_by_lines() -> None:
    said = (
        "<|channel|>analysis<|message|>One.<|end|><|start|>assistant<|channel|>analysis"
        "<|message|>Two.<|end|><|start|>assistant<|channel|>final<|message|>Done.<|return|>"
    )
    assert check_splits(said) == ReadChoice("One.\nTwo.", "Done.", [])


@pytest.mark.parametrize(
    ("said", "content"),
    [
        # Calls that are not calls of a known tool: their bodies are content.
        (
            '<|channel|>commentary to=functions.send_email<|message|>{"to": "x"}<|call|>',
            '{"to": "x"}',
        ),
        ("<|channel|>commentary to=functions.now<|message|>[1, 2]<|call|>", "[1, 2]"),
        ('<|channel|>commentary to=functions.now<|message|>{"x": <|call|>', '{"x": '),
        (
            '<|channel|>commentary to=browser.search<|message|>{"query": "x"}<|call|>',
            '{"query": "x"}',
        ),
        ('<|channel|>commentary to=functions.now<|message|>{"x": 1', '{"x": 1'),
        ("<|channel|>commentary to=functions.now<|message|>" + "[" * 2000, "[" * 2000),
        # The model writing a tool's result itself.
        (
            '<|start|>functions.now to=assistant<|channel|>commentary<|message|>"12:00"<|end|>',
            '"12:00"',
        ),
    ],
)
def test_what_is_not_a_call_of_a_known_tool_is_content(said: str, content: str) -> None:
    assert check_splits(said) == ReadChoice(None, content, [])


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("", ReadChoice(None, "", [])),
        ("<|call|>", ReadChoice(None, "", [])),
        ("<|call|>hi", ReadChoice(None, "hi", [])),
        ("<|end|><|end|><|return|>", ReadChoice(None, "", [])),
        ("<|message|>hi", ReadChoice(None, "hi", [])),
        ("<|channel|>", ReadChoice(None, "", [])),
        ("<|channel|>analysis", ReadChoice(None, "", [])),  # ended inside a header
        ("<|chan", ReadChoice(None, "<|chan", [])),
        ("<|channel|>final<|mess", ReadChoice(None, "final<|mess", [])),
        ("<|channel|>Hello, world", ReadChoice(None, "Hello, world", [])),
        ("<|message|><|channel|>analysis<|message|>x", ReadChoice("x", "", [])),
        ("<|channel|>analysis<|message|>a<|message|>b<|constrain|>c", ReadChoice("abc", "", [])),
        (
            "<|channel|>final<|message|>a<|start|>assistant<|channel|>final<|message|>b",
            ReadChoice(None, "a\nb", []),
        ),
        ("text<|channel|>analysis<|message|>why", ReadChoice("why", "text", [])),
        ("<|end|>\n\n<|start|>assistant<|channel|>final<|message|>ok", ReadChoice(None, "ok", [])),
        ("<|return|>after the end", ReadChoice(None, "after the end", [])),
        ("<|start|><|start|>assistant<|call|>", ReadChoice(None, "", [])),
        (" to=functions.now<|call|>", ReadChoice(None, "", [])),
        ("<|constrain|>json<|message|>{}", ReadChoice(None, "{}", [])),
        ("a < b <| c |> d", ReadChoice(None, "a < b <| c |> d", [])),
        ("<|channel|>" + "x" * 200, ReadChoice(None, "x" * 200, [])),
        ("<|start|>assistant\n" + CALL, ReadChoice(None, "", [ParsedCall("now", "{}")])),
    ],
)
def test_garbage_never_raises_and_keeps_its_text(said: str, expected: ReadChoice) -> None:
    assert check_splits(said) == expected


def test_reasoning_is_active_only_inside_an_analysis_body() -> None:
    parser = HarmonyParser(TOOLS)
    states = []
    for piece in ["<|channel|>", "analysis", "<|message|>", "hm", "<|end|>", "<|start|>", CALL]:
        parser.feed(piece)
        states.append(parser.reasoning_active)
    assert states == [False, False, True, True, False, False, False]


def test_an_earlier_turns_reasoning_is_sent_back_as_its_analysis_message() -> None:
    # gpt-oss's template reads an earlier turn's reasoning from ``thinking``; the API's
    # ``reasoning`` field reaches it, so a call turn renders as harmony again (issue 19).
    said = model_says(template(GPT_OSS), CALLS[:1], reasoning="Paris first.", end=END)
    assert said.startswith("<|channel|>analysis<|message|>Paris first.<|end|>")
    whole = read(said)
    assert whole.reasoning == "Paris first."
    assert as_calls(whole) == [(CALLS[0].name, dict(CALLS[0].arguments))]
