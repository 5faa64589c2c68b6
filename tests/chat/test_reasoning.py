"""Splitting a reasoning model's output into reasoning and content, over scripted token
streams: each token's bytes go through the engine's detokenizer (UTF-8 and stop-string
hold-back) and then the splitter, as in a real stream."""

from __future__ import annotations

import pytest

from tether.chat.output import ChoiceReader
from tether.chat.reasoning import (
    KNOWN_MARKERS,
    Reasoning,
    ReasoningMarkers,
    ReasoningSplitter,
)
from tether.engines.llamacpp.detokenizer import Detokenizer

THINK = ReasoningMarkers("<think>", "</think>")


def run(
    tokens: list[bytes], *, opened: bool = True, stop: tuple[str, ...] = ()
) -> tuple[list[tuple[str, str]], int]:
    """Stream ``tokens`` (each a token's bytes) as the engine and the chat streamer would;
    return the released ``(part, text)`` pieces, merged by part, and the reasoning tokens."""
    detokenizer = Detokenizer(lambda token_id: tokens[token_id], stop)
    splitter = ReasoningSplitter(THINK, in_reasoning=opened)
    pieces: list[tuple[str, str]] = []
    for token_id in range(len(tokens)):
        pieces += splitter.feed(detokenizer.add_token(token_id), 1)
        if detokenizer.stopped:
            break
    else:
        pieces += splitter.feed(detokenizer.finalize())
    pieces += splitter.finish()
    merged: list[tuple[str, str]] = []
    for part, text in pieces:
        if merged and merged[-1][0] == part:
            merged[-1] = (part, merged[-1][1] + text)
        else:
            merged.append((part, text))
    return merged, splitter.reasoning_tokens


def test_text_before_the_end_marker_is_reasoning_and_after_it_content() -> None:
    pieces, reasoning_tokens = run([b"Two", b" plus two.", b"\n</think>", b"\n\n", b"4"])
    assert pieces == [("reasoning", "Two plus two."), ("content", "4")]
    assert reasoning_tokens == 3  # the tokens up to and including the end marker


def test_a_marker_split_across_tokens_is_held_back_not_leaked() -> None:
    tokens = [b"Hm", b".</", b"thi", b"nk", b">", b"Yes"]
    detokenizer = Detokenizer(lambda token_id: tokens[token_id])
    splitter = ReasoningSplitter(THINK, in_reasoning=True)
    released = [splitter.feed(detokenizer.add_token(i), 1) for i in range(len(tokens))]
    assert released == [
        [("reasoning", "Hm")],
        [("reasoning", ".")],  # "</" is held: it may be the end marker
        [],
        [],
        [],
        [("content", "Yes")],
    ]


def test_a_false_start_of_the_marker_is_released_as_reasoning() -> None:
    pieces, _ = run([b"a </thin", b"g> b", b"</think>c"])
    assert pieces == [("reasoning", "a </thing> b"), ("content", "c")]


def test_an_output_that_opens_reasoning_itself_is_split_too() -> None:
    # Qwen3's template does not open <think>; the model writes it.
    pieces, reasoning_tokens = run(
        [b"<th", b"ink>\n", b"Let me see", b"</think>\n\nHi"], opened=False
    )
    assert pieces == [("reasoning", "Let me see"), ("content", "Hi")]
    assert reasoning_tokens == 4


def test_a_start_marker_later_in_the_answer_is_text() -> None:
    pieces, reasoning_tokens = run([b"Use the ", b"<think>", b" tag."], opened=False)
    assert pieces == [("content", "Use the <think> tag.")]
    assert reasoning_tokens == 0


def test_a_stop_string_inside_reasoning_ends_the_output_in_reasoning() -> None:
    pieces, _ = run([b"Step one. ", b"STOP", b" more", b"</think>", b"answer"], stop=("STOP",))
    assert pieces == [("reasoning", "Step one. ")]


def test_a_stop_string_across_the_end_marker_is_still_exact() -> None:
    # "</think>ans" is a stop string: it ends the output before the marker is released.
    pieces, _ = run([b"x", b"</think>", b"ans", b"wer"], stop=("</think>ans",))
    assert pieces == [("reasoning", "x")]


def test_a_utf8_character_split_across_tokens_at_the_boundary_arrives_whole() -> None:
    euro = "€".encode()  # 3 bytes, split over two tokens right after the end marker
    pieces, _ = run([b"think \xc3", b"\xa9", b"</think>", euro[:2], euro[2:] + b"5"])
    assert pieces == [("reasoning", "think é"), ("content", "€5")]


def test_an_unfinished_reasoning_is_all_reasoning() -> None:
    pieces, reasoning_tokens = run([b"I wonder", b" whether </thi"])
    assert pieces == [("reasoning", "I wonder whether </thi")]
    assert reasoning_tokens == 2


@pytest.mark.parametrize("markers", KNOWN_MARKERS)
def test_every_known_pair_is_detected_in_a_template(markers: ReasoningMarkers) -> None:
    template = (
        "{% for m in messages %}{{ m.content }}{% endfor %}"
        f"{{% if add_generation_prompt %}}{markers.start}\n{{% endif %}}"
        f"{{# the answer follows {markers.end} #}}"
    )
    assert ReasoningMarkers.detect(template) == markers


def test_a_template_without_markers_is_no_reasoning_model() -> None:
    assert ReasoningMarkers.detect("{{ messages[0].content }}") is None
    assert ReasoningMarkers.detect(None) is None


def test_a_prompt_that_opens_reasoning_starts_inside_it() -> None:
    reasoning, prompt = Reasoning.for_prompt(THINK, "<user>hi<assistant><think>\n", None)
    assert reasoning.opened and prompt == "<user>hi<assistant><think>\n"
    reasoning, _ = Reasoning.for_prompt(THINK, "<user>hi<assistant>", None)
    assert not reasoning.opened


def test_reasoning_turned_off_closes_a_prompt_that_opens_it() -> None:
    reasoning, prompt = Reasoning.for_prompt(THINK, "<assistant><think>\n", False)
    assert not reasoning.opened
    assert prompt == "<assistant><think>\n\n</think>\n\n"


def test_split_of_a_finished_choice() -> None:
    reasoning = Reasoning(THINK, opened=True)

    def split(outputs: list[tuple[str, int]]) -> tuple[str | None, str, int | None]:
        reader = ChoiceReader(reasoning, None)
        read = reader.read(outputs)
        return read.reasoning, read.content, reader.reasoning_tokens

    assert split([("a", 1), ("b</think>", 2), ("\nc", 1)]) == ("ab", "c", 3)
    assert split([("</think>", 1), ("only", 1)]) == (None, "only", 1)


def test_whitespace_before_the_end_marker_is_held_then_dropped() -> None:
    splitter = ReasoningSplitter(THINK, in_reasoning=True)
    assert splitter.feed("a \n", 1) == [("reasoning", "a")]
    assert splitter.feed(" b\n", 1) == [("reasoning", " \n b")]  # inner whitespace is text
    assert splitter.feed("\n</think>\n\nc", 1) == [("content", "c")]
