"""Reasoning models: the template's thinking markers, and generated text split at them.

A reasoning model writes its thinking between two markers (``<think>`` … ``</think>`` for
DeepSeek R1 and Qwen3) before the answer. ``ReasoningMarkers.detect`` finds the pair a chat
template uses; ``ReasoningSplitter`` splits a choice's text, as it streams, into reasoning and
content. Two starts are possible: the template opens the start marker in the generation prompt
(DeepSeek R1: the answer begins inside reasoning), or the model writes it itself (Qwen3: a
start marker at the very beginning of the output opens reasoning; anywhere later it is text).

The splitter works on text the detokenizer released, so UTF-8 and stop strings were handled
before it; it holds back only a suffix that could still grow into the marker it looks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Part = Literal["reasoning", "content"]


@dataclass(frozen=True, slots=True)
class ReasoningMarkers:
    """The text that opens and the text that closes a model's reasoning."""

    start: str
    end: str
    name: str = field(default="", compare=False)  # vLLM's --reasoning-parser name

    @classmethod
    def detect(cls, template: str | None) -> ReasoningMarkers | None:
        """The first known pair whose markers both appear in the chat template's source."""
        if not template:
            return None
        for markers in KNOWN_MARKERS:
            if markers.start in template and markers.end in template:
                return markers
        return None

    def opens_in_prompt(self, prompt: str) -> bool:
        """Whether the rendered prompt ends inside reasoning (its generation prompt opens it)."""
        return prompt.rstrip().endswith(self.start)

    def closing(self) -> str:
        """What closes reasoning before an answer when a prompt opened it and reasoning is off
        (Qwen3's own template writes the same for ``enable_thinking=False``)."""
        return f"\n{self.end}\n\n"


# Most specific first: ``<thinking>`` contains neither ``<think>`` nor ``</think>``, but the
# order keeps a template mentioning several on the common pair.
KNOWN_MARKERS = (
    ReasoningMarkers("<|channel>thought", "<channel|>", "gemma4"),  # Gemma 4's thought channel
    # DeepSeek R1, Qwen3, QwQ, GLM, Kimi K2 Thinking, MiniMax M2, Phi-4 reasoning
    ReasoningMarkers("<think>", "</think>", "deepseek_r1"),
    ReasoningMarkers("<seed:think>", "</seed:think>", "seed_oss"),
    ReasoningMarkers("<thinking>", "</thinking>", "thinking"),
    ReasoningMarkers("<|START_THINKING|>", "<|END_THINKING|>", "command_a"),
    ReasoningMarkers("[THINK]", "[/THINK]", "mistral"),  # Magistral, Ministral reasoning
)
_THINK = KNOWN_MARKERS[1]
# ``--reasoning-parser NAME`` (vLLM's names, and the names above). gpt-oss's reasoning is its
# harmony analysis channel, which the ``openai`` tool parser reads.
REASONING_PARSERS: dict[str, ReasoningMarkers] = {
    **{markers.name: markers for markers in KNOWN_MARKERS},
    **{name: _THINK for name in ("qwen3", "glm45", "kimi_k2", "minimax_m2")},
}


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A chat request to a reasoning model: its markers, and whether the prompt opened them."""

    markers: ReasoningMarkers
    opened: bool

    @classmethod
    def for_prompt(
        cls, markers: ReasoningMarkers, prompt: str, enabled: bool | None
    ) -> tuple[Reasoning, str]:
        """The prompt's reasoning state, and the prompt to generate from: when the request
        turned reasoning off but the template opens it anyway (DeepSeek R1's does), the
        prompt is closed so that the model answers at once."""
        opened = markers.opens_in_prompt(prompt)
        if opened and enabled is False:
            return cls(markers, False), prompt + markers.closing()
        return cls(markers, opened), prompt

    def splitter(self, interrupts: tuple[str, ...] = ()) -> ReasoningSplitter:
        return ReasoningSplitter(self.markers, in_reasoning=self.opened, interrupts=interrupts)


class ReasoningSplitter:
    """Splits one choice's streamed text into reasoning and content.

    ``feed`` takes the text released with some tokens and returns the ``(part, text)`` pieces
    it can release now, in order; ``finish`` flushes what was held. The tokens fed while
    reasoning (including those that carried the end marker) are counted in
    ``reasoning_tokens``. Whitespace around the reasoning (right after a marker, right
    before the end marker) is dropped, as llama.cpp's parser does; markers are never
    released. ``interrupts`` (the openers of the model's tool calls) end reasoning where they
    appear even without the end marker, and stay in the content (issue 19).
    """

    def __init__(
        self, markers: ReasoningMarkers, *, in_reasoning: bool, interrupts: tuple[str, ...] = ()
    ) -> None:
        self._markers = markers
        self._interrupts = interrupts
        # "start": the output may yet open reasoning with the start marker.
        self._state: Literal["start", "reasoning", "content"] = (
            "reasoning" if in_reasoning else "start"
        )
        self._held = ""
        self._strip = in_reasoning  # drop leading whitespace of the current part
        self._undecided_tokens = 0  # fed while it was unknown whether reasoning opens
        self._interrupted = False  # a call opener ended reasoning
        self.reasoning_tokens = 0

    @property
    def part(self) -> Part:
        """The part text fed now would belong to, as far as is known."""
        return "reasoning" if self._state == "reasoning" else "content"

    def feed(self, text: str, tokens: int = 0) -> list[tuple[Part, str]]:
        was_reasoning = self._state == "reasoning"
        if self._state == "start":
            self._undecided_tokens += tokens
            tokens = 0
        self._held += text
        pieces: list[tuple[Part, str]] = []
        while True:
            if self._state == "start":
                if not self._leave_start():
                    break
            elif self._state == "reasoning":
                if not self._release_until(self._markers.end, "reasoning", pieces):
                    break
                self._state = "content"
            else:
                self._emit("content", self._held, pieces)
                self._held = ""
                break
        # The tokens that carried the end marker were reasoning; those that opened a call not.
        if (was_reasoning or self._state != "content") and not self._interrupted:
            self.reasoning_tokens += tokens
        return pieces

    def finish(self) -> list[tuple[Part, str]]:
        pieces: list[tuple[Part, str]] = []
        self._emit(self.part, self._held, pieces)
        self._held = ""
        return pieces

    def _leave_start(self) -> bool:
        """Decide, once enough text is held, whether the output opens reasoning."""
        start = self._markers.start
        head = self._held.lstrip()
        if head.startswith(start):
            self._held = head[len(start) :]
            self._state, self._strip = "reasoning", True
            self.reasoning_tokens += self._undecided_tokens
            return True
        if start.startswith(head):  # still only whitespace or part of the marker
            return False
        self._state = "content"
        return True

    def _release_until(self, marker: str, part: Part, pieces: list[tuple[Part, str]]) -> bool:
        """Release ``part`` text up to ``marker`` (or an interrupt, which is kept); True when
        one was found."""
        held = self._held
        at = held.find(marker)
        cut = min((i for i in map(held.find, self._interrupts) if i >= 0), default=-1)
        if cut >= 0 and (at < 0 or cut < at):
            self._emit(part, held[:cut].rstrip(), pieces)
            self._held = held[cut:]
            self._interrupted = True
            return True
        if at >= 0:
            self._emit(part, held[:at].rstrip(), pieces)
            self._held = held[at + len(marker) :]
            self._strip = True
            return True
        keep = max(partial_suffix(held, m) for m in (marker, *self._interrupts))
        if part == "reasoning":  # whitespace just before the end marker is dropped too
            before = held[: len(held) - keep]
            keep += len(before) - len(before.rstrip())
        self._emit(part, held[: len(held) - keep], pieces)
        self._held = held[len(held) - keep :]
        return False

    def _emit(self, part: Part, text: str, pieces: list[tuple[Part, str]]) -> None:
        if self._strip:
            text = text.lstrip()
            self._strip = not text
        if text:
            pieces.append((part, text))


def partial_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return k
    return 0
