"""``Vocab``: a tool-call format's markers that the model writes as special tokens keep their
text for its parser (issue 19), while other special tokens still add nothing."""

from __future__ import annotations

import pytest

from tests.engines.llamacpp.helpers import chat, generate
from tether.engines.llamacpp.async_engine import AsyncEngine

pytestmark = pytest.mark.model

# Gemma's turn opener is a control token: the closest the embedded vocabulary has to
# gpt-oss's <|channel|> or Kimi's <|tool_calls_section_begin|>.
MARKER = "<start_of_turn>"


def test_only_the_markers_special_tokens_keep_their_text(model_engine: AsyncEngine) -> None:
    vocab = model_engine._require_core().vocab
    (marker,) = vocab.tokenize(MARKER, add_special=False)
    (word,) = vocab.tokenize("Hello", add_special=False)
    assert vocab.piece(marker) == b""

    keeping = vocab.pieces_keeping((MARKER, "<tool_call>"))

    assert keeping(marker) == MARKER.encode()
    assert keeping(word) == vocab.piece(word) == b"Hello"
    # Markers that are plain text in this vocabulary change nothing.
    assert vocab.pieces_keeping(("<tool_call>",)) == vocab.piece


async def test_a_kept_marker_reaches_the_generated_text(model_engine: AsyncEngine) -> None:
    vocab = model_engine._require_core().vocab
    (marker,) = vocab.tokenize(MARKER, add_special=False)
    forced = {"max_tokens": 2, "temperature": 0, "logit_bias": {marker: 100.0}}

    kept = await generate(model_engine, chat("Hi"), keep_special=(MARKER,), **forced)
    dropped = await generate(model_engine, chat("Hi"), **forced)

    assert kept[0].token_ids[0] == dropped[0].token_ids[0] == marker
    assert kept[0].text.startswith(MARKER)
    assert MARKER not in dropped[0].text
