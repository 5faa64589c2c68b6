"""``ChoiceReader``: one generated choice as the chat layer reads it, as it streams.

A reasoning model's text is split into reasoning and content (``ReasoningSplitter``); with
tools, the content goes through the family's ``ToolParser``, which turns calls written in the
model's own format into call events and holds back only what may still become one. A
format that carries reasoning itself (gpt-oss's harmony channels) is read by its parser
alone. Chat completions (streamed or not) and the Responses API all read choices through
it, so they release the same text at the same moments and read the same calls.
"""

from __future__ import annotations

from collections.abc import Iterable

from tether.chat.reasoning import Reasoning
from tether.chat.tool_parsers.base import Event, ReadChoice, ToolParser, collect


class ChoiceReader:
    """``feed`` the text released with some tokens, get the events to send now; ``finish``
    gives the rest."""

    def __init__(self, reasoning: Reasoning | None, parser: ToolParser | None) -> None:
        interrupts = parser.openers if parser is not None else ()
        self._splitter = reasoning.splitter(interrupts) if reasoning is not None else None
        self._parser = parser
        self._parser_tokens = 0  # tokens fed while the parser was inside reasoning

    @property
    def reasoning_tokens(self) -> int | None:
        """Tokens spent reasoning; None when the model is no reasoning model."""
        if self._splitter is not None:
            return self._splitter.reasoning_tokens
        if self._parser is not None and self._parser.reasons:
            return self._parser_tokens
        return None

    @property
    def calls(self) -> int:
        """Calls started so far."""
        return self._parser.calls if self._parser is not None else 0

    def feed(self, text: str, tokens: int) -> list[Event]:
        if self._splitter is None:
            if self._parser is not None and self._parser.reasoning_active:
                self._parser_tokens += tokens
            return self._content([("content", text)] if text else [])
        return self._content(self._splitter.feed(text, tokens))

    def finish(self) -> list[Event]:
        events = self._content(self._splitter.finish()) if self._splitter is not None else []
        if self._parser is not None:
            events += self._parser.finish()
        return events

    def read(self, outputs: Iterable[tuple[str, int]]) -> ReadChoice:
        """A whole choice from its ``(text, tokens)`` outputs."""
        events: list[Event] = []
        for text, tokens in outputs:
            events += self.feed(text, tokens)
        return collect(events + self.finish())

    def _content(self, pieces: Iterable[Event]) -> list[Event]:
        """Content through the parser; reasoning passes as it is."""
        if self._parser is None:
            return list(pieces)
        events: list[Event] = []
        for piece in pieces:
            if isinstance(piece, tuple) and piece[0] == "content":
                events += self._parser.feed(piece[1])
            else:
                events.append(piece)
        return events
