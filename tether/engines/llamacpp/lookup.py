"""``PromptLookup``: draft tokens for one sequence by finding where its last few tokens
appeared before, in its prompt or its own output, and proposing what followed them there
(prompt-lookup decoding; llama.cpp's ``ngram-simple``, vLLM's ``ngram``).

An answer that quotes its prompt (a summary, a RAG answer, a code edit, an agent repeating
its context) continues as its source did; the engine verifies the proposal in one decode and
keeps the part the sampler agrees with (``Drafter`` decides how much to propose).

The index maps each ``N``-gram of the sequence to the position after its latest occurrence,
so a proposal is one dict lookup, and the index grows by one entry per new token. A match
that runs into the end of the sequence copies on from what it has just copied (an LZ77
copy), so a loop the text is caught in is proposed as a loop.
"""

from __future__ import annotations

# Tokens a match must cover. Fewer match more often and are right less often; on Gemma's
# 262,144-token vocabulary three tokens are about two words.
NGRAM = 3
# How far back a match is measured (its length, a proposal's credibility), in tokens.
MAX_MATCH = 16


class PromptLookup:
    """The n-gram index of one sequence's tokens (prompt + output)."""

    __slots__ = ("_index", "_indexed")

    def __init__(self) -> None:
        self._index: dict[tuple[int, ...], int] = {}
        self._indexed = NGRAM  # positions below this are in the index

    def propose(self, tokens: list[int], k: int) -> tuple[list[int], int]:
        """Up to ``k`` tokens that may follow ``tokens``, and how many tokens the match
        behind them covers (0: no match, no proposal)."""
        end = len(tokens)
        index = self._index
        for i in range(self._indexed, end):  # the n-grams that end before the last one
            index[tuple(tokens[i - NGRAM : i])] = i
        self._indexed = max(self._indexed, end)
        if end <= NGRAM or k <= 0:
            return [], 0
        source = index.get(tuple(tokens[end - NGRAM :]))
        if source is None:
            return [], 0
        matched = NGRAM
        while (
            matched < MAX_MATCH
            and source - matched > 0
            and tokens[source - matched - 1] == tokens[end - matched - 1]
        ):
            matched += 1
        draft: list[int] = []
        for j in range(k):
            at = source + j
            draft.append(tokens[at] if at < end else draft[at - end])
        return draft, matched
