"""``ChoiceReader``: one generated choice as the chat layer reads it, as it streams.

A reasoning model's text is split into reasoning and content (``ReasoningSplitter``); with
tools, the content goes through a ``ToolCallBuffer``, which holds back what may be a call.
Chat completions and the Responses API both read choices through it, so they release the
same text at the same moments and parse the same calls.
"""

from __future__ import annotations

from tether.chat.reasoning import Part, Reasoning
from tether.chat.tool_calls import ParsedCall, ToolCallBuffer

Piece = tuple[Part, str]


class ChoiceReader:
    """``feed`` the text released with some tokens, get the pieces to send now; ``finish``
    gives the rest and the tool calls, if the choice was calls."""

    def __init__(self, reasoning: Reasoning | None, calls: ToolCallBuffer | None) -> None:
        self._splitter = reasoning.splitter() if reasoning is not None else None
        self._calls = calls

    @property
    def reasoning_tokens(self) -> int | None:
        """Tokens spent reasoning; None when the model is no reasoning model."""
        return self._splitter.reasoning_tokens if self._splitter is not None else None

    def feed(self, text: str, tokens: int) -> list[Piece]:
        if self._splitter is None:
            return self._content([("content", text)] if text else [])
        return self._content(self._splitter.feed(text, tokens))

    def finish(self) -> tuple[list[Piece], list[ParsedCall] | None]:
        pieces = self._content(self._splitter.finish()) if self._splitter is not None else []
        if self._calls is None:
            return pieces, None
        held, calls = self._calls.finish()
        if held:
            pieces.append(("content", held))
        return pieces, calls

    def _content(self, pieces: list[Piece]) -> list[Piece]:
        """Content through the tool-call buffer; pieces that end up empty are dropped."""
        if self._calls is None:
            return pieces
        kept = []
        for part, text in pieces:
            if part == "content":
                text = self._calls.feed(text)
            if text:
                kept.append((part, text))
        return kept
