"""Sampling features on the real model: stop strings, UTF-8, ``n``, logprobs and ``echo``.

Gemma 3 270M is a base model, so these check structure and behaviour, never answer quality.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import openai
import pytest
from together import Together

from tests.e2e.conftest import Server, on_engines
from tests.e2e.wire import chat_body, json_chunks, stream_bytes

pytestmark = [pytest.mark.e2e, on_engines()]

POEM = [{"role": "user", "content": "Write a short poem about the sea."}]


def _stop_string_in(text: str) -> tuple[str, int]:
    """A 5-character piece from the middle of ``text`` whose first occurrence is there."""
    for start in range(len(text) // 3, len(text) - 5):
        piece = text[start : start + 5]
        if piece.strip() and text.find(piece) == start:
            return piece, start
    raise AssertionError(f"no usable stop string in {text!r}")


def test_stop_string_cuts_the_stream_before_it(together_client: Together, server: Server) -> None:
    greedy = together_client.chat.completions.create(
        model=server.model, messages=POEM, max_tokens=24, temperature=0
    )
    text = greedy.choices[0].message.content
    assert isinstance(text, str)
    stop, at = _stop_string_in(text)

    chunks = list(
        together_client.chat.completions.create(
            model=server.model,
            messages=POEM,
            max_tokens=24,
            temperature=0,
            stop=[stop],
            stream=True,
        )
    )

    pieces = [c.choices[0].delta.content or "" for c in chunks]
    assert "".join(pieces) == text[:at]
    assert not any(stop in piece for piece in pieces)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stop_string_without_streaming(openai_client: openai.OpenAI, server: Server) -> None:
    prompt = "1, 2, 3, 4, 5,"
    greedy = openai_client.completions.create(
        model=server.model, prompt=prompt, max_tokens=16, temperature=0
    )
    stop, at = _stop_string_in(greedy.choices[0].text)

    cut = openai_client.completions.create(
        model=server.model, prompt=prompt, max_tokens=16, temperature=0, stop=stop
    )

    assert cut.choices[0].text == greedy.choices[0].text[:at]
    assert cut.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    "pattern",
    ["[ぁ-ん]{5,10}", "[😀-🙏]{3,6}"],
    ids=["hiragana", "emoji"],
)
def test_multibyte_text_streams_as_whole_characters(server: Server, pattern: str) -> None:
    body = chat_body(
        server.model,
        "Say something.",
        max_tokens=32,
        stream=True,
        response_format={"type": "regex", "pattern": pattern},
    )

    response, raw = stream_bytes(server.url, "/v1/chat/completions", body)
    chunks = json_chunks(raw)  # decodes the body strictly as UTF-8

    assert response.status_code == 200
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks if c["choices"][0]["text"]]
    assert pieces
    assert not any("\ufffd" in piece for piece in pieces)
    assert re.fullmatch(pattern, "".join(pieces))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_n_2_streams_two_choices_each_with_its_own_finish(
    openai_client: openai.OpenAI, server: Server
) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model=server.model, messages=POEM, max_tokens=8, n=2, stream=True
        )
    )

    finishes = Counter(c.choices[0].index for c in chunks if c.choices[0].finish_reason)
    assert finishes == {0: 1, 1: 1}
    texts = [
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices[0].index == i)
        for i in (0, 1)
    ]
    assert all(text for text in texts)
    assert chunks[-1].choices[0].finish_reason is not None
    assert [c.usage is not None for c in chunks].count(True) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 16


def test_n_2_without_streaming_returns_two_choices(
    together_client: Together, server: Server
) -> None:
    answer = together_client.chat.completions.create(
        model=server.model, messages=POEM, max_tokens=8, n=2
    )

    assert [choice.index for choice in answer.choices] == [0, 1]
    assert all(choice.message.content for choice in answer.choices)


def _check_logprobs(logprobs: Any, text: str, top: int) -> None:
    """The contract's shape, read as SDK attributes; greedy picks the likeliest token."""
    tokens = logprobs.tokens
    assert tokens and "".join(tokens) == text
    assert len(logprobs.token_logprobs) == len(logprobs.token_ids) == len(tokens)
    assert len(logprobs.top_logprobs) == len(tokens)
    for token, logprob, alternatives in zip(
        tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True
    ):
        assert logprob <= 0
        assert 1 <= len(alternatives) <= top
        assert alternatives[token] == pytest.approx(logprob)
        assert max(alternatives.values()) == pytest.approx(logprob)


def test_together_logprobs_int_on_completions(together_client: Together, server: Server) -> None:
    answer = together_client.completions.create(
        model=server.model,
        prompt="The capital of France is",
        max_tokens=6,
        temperature=0,
        logprobs=2,
    )

    choice = answer.choices[0]
    assert choice.text is not None
    _check_logprobs(choice.logprobs, choice.text, top=2)


def openai_logprobs_request(server: Server) -> dict[str, Any]:
    """What the openai SDK sends for logprobs: ``logprobs: true`` and ``top_logprobs``."""
    return {
        "model": server.model,
        "messages": POEM,
        "max_tokens": 6,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 2,
    }


def test_openai_logprobs_true_with_top_logprobs_on_chat(
    openai_client: openai.OpenAI, server: Server
) -> None:
    answer = openai_client.chat.completions.create(**openai_logprobs_request(server))

    choice = answer.choices[0]
    assert choice.message.content
    _check_openai_logprobs(choice.logprobs, choice.message.content, top=2)


def test_openai_stream_helper_with_logprobs(openai_client: openai.OpenAI, server: Server) -> None:
    """The SDK's ``chat.completions.stream()`` helper crashed on Together's float logprob in
    each chunk; asked with ``logprobs: true`` it now gets OpenAI's shape (issue 14)."""
    with openai_client.chat.completions.stream(**openai_logprobs_request(server)) as stream:
        deltas = [event for event in stream if event.type == "logprobs.content.delta"]
        # get_final_completion() would raise LengthFinishReasonError (max_tokens is reached):
        # the snapshot is what the helper assembled from the chunks.
        snapshot = stream.current_completion_snapshot

    assert deltas
    choice = snapshot.choices[0]
    assert choice.message.content
    _check_openai_logprobs(choice.logprobs, choice.message.content, top=2)


def _check_openai_logprobs(logprobs: Any, text: str, top: int) -> None:
    """OpenAI's ``logprobs.content``: one entry per token of the text, with alternatives."""
    assert logprobs is not None and logprobs.content
    assert "".join(entry.token for entry in logprobs.content) == text
    for entry in logprobs.content:
        assert entry.logprob <= 0
        assert bytes(entry.bytes or []).decode() == entry.token
        assert len(entry.top_logprobs) == top
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[-1].logprob


def test_streamed_logprob_is_the_sampled_tokens(server: Server) -> None:
    body = {"model": server.model, "prompt": "The capital of France is", "max_tokens": 6}
    body |= {"temperature": 0, "logprobs": 2, "stream": True}

    chunks = json_chunks(stream_bytes(server.url, "/v1/completions", body)[1])

    token_chunks = [c for c in chunks if c["choices"][0]["text"]]
    assert token_chunks
    for chunk in token_chunks:
        choice = chunk["choices"][0]
        assert choice["logprobs"] == chunk["token"]["logprob"] <= 0
        assert len(choice["top_logprobs"]) == 2  # Together's {token: logprob} alternatives


def test_echo_returns_the_prompt(together_client: Together, server: Server) -> None:
    prompt = "The capital of France is"
    answer = together_client.completions.create(
        model=server.model, prompt=prompt, max_tokens=4, echo=True
    )

    assert answer.prompt[0].text == prompt
    assert answer.choices[0].text
    assert not answer.choices[0].text.startswith(prompt)


def test_echo_with_logprobs_scores_the_prompt(together_client: Together, server: Server) -> None:
    """Prompt logprobs were null (issue 14): each prompt token now has its logprob given
    the tokens before it, the first none."""
    prompt = "The capital of France is Paris. The capital of France is"
    answer = together_client.completions.create(
        model=server.model, prompt=prompt, max_tokens=2, echo=True, logprobs=1, temperature=0
    )

    scored = answer.prompt[0].logprobs
    assert scored is not None and scored.tokens and scored.token_logprobs
    assert len(scored.token_logprobs) == len(scored.tokens)
    assert scored.token_logprobs[0] is None
    values = scored.token_logprobs[1:]
    assert all(lp is not None and lp <= 0 for lp in values)
    # The repeated sentence is far more predictable the second time.
    half = len(values) // 2
    assert sum(values[half:]) / len(values[half:]) > sum(values[:half]) / half
