"""Mistral: ``[TOOL_CALLS]`` then a JSON list, ``NAME{…}``, ``NAME[ARGS]{…}`` or
``NAME[CALL_ID]ID[ARGS]{…}``, to the end of the answer."""

from __future__ import annotations

import pytest

from tests.chat.tool_parsers.roundtrip import (
    TOOLS,
    as_calls,
    check_stream,
    model_says,
    round_trip,
    splits,
    stream,
    template,
)
from tether.chat.tool_parsers.mistral import MistralParser

END = ("</s>",)


@pytest.mark.parametrize(
    ("name", "ids"),
    [
        ("Mistral-Small-3.2-24B-Instruct-2506", ["call00001", "call00002"]),  # [CALL_ID]
        ("mistralai-Mistral-Nemo-Instruct-2407", ["call00001", "call00002"]),  # a JSON list
        ("unsloth-mistral-Devstral-Small-2507", [None, None]),  # [ARGS]
        ("mistralai-Ministral-3-14B-Reasoning-2512", [None, None]),
    ],
)
def test_mistral_family_round_trips(name: str, ids: list[str | None]) -> None:
    said = model_says(template(name, eos_token="</s>"), end=END)
    assert said.startswith("[TOOL_CALLS]")
    round_trip(MistralParser, said)
    assert [call.id for call in MistralParser(TOOLS).read(said).calls] == ids


@pytest.mark.parametrize(
    ("said", "call_id"),
    [
        ('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "X"}}]', None),
        ('[TOOL_CALLS][{"name": "get_weather", "arguments": "{\\"city\\": \\"X\\"}"}]', None),
        ('[TOOL_CALLS]get_weather{"city": "X"}', None),
        ('[TOOL_CALLS]get_weather[CALL_ID]a1B2c3D4e[ARGS]{"city": "X"}', "a1B2c3D4e"),
        ('[TOOL_CALLS]get_weather[ARGS]{"city": "X"}', None),
        # An id Mistral's templates would refuse back is dropped: the server makes one.
        ('[TOOL_CALLS]get_weather[CALL_ID]call_1[ARGS]{"city": "X"}', None),
    ],
)
def test_each_form_of_a_call(said: str, call_id: str | None) -> None:
    text = "Let me look.\n" + said
    whole = MistralParser(TOOLS).read(text)
    assert as_calls(whole) == [("get_weather", {"city": "X"})]
    assert whole.calls[0].id == call_id
    assert whole.content == "Let me look."
    for pieces in splits(text):
        check_stream(stream(MistralParser(TOOLS), pieces), whole, MistralParser.markers)


def test_several_markers_in_a_row_are_several_calls() -> None:
    said = '[TOOL_CALLS]now{}\n[TOOL_CALLS]get_weather[ARGS]{"city": "X"}\n'
    said += '[TOOL_CALLS][{"name": "now", "arguments": {}}, {"name": "now"}]'
    whole = MistralParser(TOOLS).read(said)
    assert as_calls(whole) == [
        ("now", {}),
        ("get_weather", {"city": "X"}),
        ("now", {}),
        ("now", {}),
    ]
    for pieces in splits(said):
        check_stream(stream(MistralParser(TOOLS), pieces), whole, MistralParser.markers)


@pytest.mark.parametrize(
    "text",
    [
        "[TOOL_CALLS]send_email{}",
        '[TOOL_CALLS][{"name": "send_email", "arguments": {}}]',
        '[TOOL_CALLS]now{"x":',
        "[TOOL_CALLS]now[1]",
        "[TOOL_CALLS]now",
        '[TOOL_CALLS]now{"x": Infinity}',
        "[TOOL_CALLS]now{} and then I will answer.",
        "[TOOL_CALLS]now[CALL_ID]a1B2c3D4e{}",  # an id needs its [ARGS]
        "[TOOL_CALLS][TOOL_CALLS]now{}",
        "[TOOL_CALLS][1, 2]",
        "[TOOL_CALLS][]",
        '[TOOL_CALLS][{"name": "now", "arguments": {}, "why": "not a call"}]',
        "Mistral writes [TOOL_CALLS] before its calls.",
        "A list: [TOOL_",
    ],
)
def test_text_that_only_looks_like_a_call_stays_content(text: str) -> None:
    whole = MistralParser(TOOLS).read(text)
    assert whole.calls == [] and whole.content == text.strip()
    for pieces in splits(text):
        check_stream(stream(MistralParser(TOOLS), pieces), whole, ())
