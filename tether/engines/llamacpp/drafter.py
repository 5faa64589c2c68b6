"""``Drafter``: how many drafted tokens each decoding sequence gets this step (speculative
decoding without a draft model).

Each drafted token costs a row of the batch: on the embedded model a row is most of a
decode (the output head over 262,144 tokens), so a draft pays only when it is accepted
often. ``plan`` weighs the two for every sequence of the step:

- what a row costs: ``step_cost``, a decode step's time by its rows relative to one row;
- what a drafted token is worth: at depth ``j`` of a sequence whose drafts are accepted at
  rate ``a``, ``a**j`` tokens. The rate is the sequence's own evidence, fading, added to a
  prior that grows with how long the match behind the proposal is.

The increments are taken best first, and the plan stops where tokens per unit of time
peaks. A sequence whose drafts are mostly wrong stops drafting (and tries again once its
evidence has faded); a batch of many streams, where a row already makes a whole token,
stops drafting as a whole, both without a switch.

The plan depends only on the sequences in the batch, never on timings measured or on other
requests: a request alone gives the same batches, so the same logits and the same tokens,
every time (a seed stays reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tether.engines.llamacpp.lookup import MAX_MATCH, NGRAM, PromptLookup

# The prior acceptance of a drafted token by the length of the match behind it (from NGRAM
# tokens to MAX_MATCH), and how many drafted tokens of evidence it weighs.
_PRIOR_LOW, _PRIOR_HIGH, _PRIOR_WEIGHT = 0.6, 0.9, 4.0
# Per step, how much of a sequence's evidence is kept.
_KEEP = 0.95


def step_cost(rows: int) -> float:
    """A decode step's time by rows (logits asked for), relative to one row: the embedded
    model on a 2-core AMD EPYC (13.8 ms at 1 row, 24.6 at 2, 50.6 at 8, 79 at 16, 140 at
    32, 262 at 64; 16 streams of one row each cost what one stream of 16 rows does; issue
    21). A larger model spends less of a step on its output head, so this shape is a
    conservative one there."""
    return 1.0 if rows <= 1 else 1.3 + 0.277 * rows


def prior(matched: int) -> float:
    """Acceptance expected of a proposal whose match covers ``matched`` tokens."""
    share = (min(matched, MAX_MATCH) - NGRAM) / (MAX_MATCH - NGRAM)
    return _PRIOR_LOW + (_PRIOR_HIGH - _PRIOR_LOW) * share


@dataclass(slots=True)
class DraftState:
    """One sequence's drafting: its n-gram index and its evidence of acceptance."""

    lookup: PromptLookup = field(default_factory=PromptLookup)
    hits: float = 0.0  # drafted tokens accepted (fading)
    trials: float = 0.0  # drafted tokens verified: the accepted ones and the first rejected

    def rate(self, prior: float) -> float:
        return (self.hits + _PRIOR_WEIGHT * prior) / (self.trials + _PRIOR_WEIGHT)


@dataclass(slots=True)
class Candidate:
    """A decoding sequence that may draft: its tokens, state, and most tokens to draft."""

    tokens: list[int]
    state: DraftState
    limit: int


class Drafter:
    """Plans each step's drafts and keeps each sequence's evidence; counts them for
    ``/metrics``."""

    def __init__(self, max_draft: int) -> None:
        self.max_draft = max_draft
        self.drafted = 0  # totals, for /metrics
        self.accepted = 0
        self.drafts = 0  # verifications: chunks that carried drafted tokens

    def plan(self, candidates: list[Candidate], base_rows: int, room: int) -> list[list[int]]:
        """Each candidate's drafted tokens (often none) for a step whose decode chunks
        already take ``base_rows`` rows; at most ``room`` drafted tokens in all."""
        proposals: list[list[int]] = []
        gains: list[tuple[float, int]] = []
        for i, cand in enumerate(candidates):
            state = cand.state
            state.hits *= _KEEP
            state.trials *= _KEEP
            draft, matched = state.lookup.propose(cand.tokens, min(self.max_draft, cand.limit))
            proposals.append(draft)
            rate = state.rate(prior(matched)) if draft else 0.0
            gain = 1.0
            for _ in draft:
                gain *= rate
                gains.append((gain, i))
        taken = [0] * len(candidates)
        if gains and room > 0:
            gains.sort(key=lambda g: -g[0])
            for _, i in gains[: self._best_count(gains[:room], base_rows)]:
                taken[i] += 1
        return [draft[:k] for draft, k in zip(proposals, taken, strict=True)]

    @staticmethod
    def _best_count(gains: list[tuple[float, int]], base_rows: int) -> int:
        """How many of the increments (best first) make the most tokens per unit of time."""
        rows, tokens = base_rows, float(base_rows)
        best, best_n = tokens / step_cost(rows), 0
        for n, (gain, _) in enumerate(gains, 1):
            rows += 1
            tokens += gain
            value = tokens / step_cost(rows)
            if value > best:
                best, best_n = value, n
        return best_n

    def observe(self, state: DraftState, drafted: int, accepted: int, rejected: bool) -> None:
        """A verified draft: ``accepted`` of its ``drafted`` tokens were kept; ``rejected``
        when the sampler chose otherwise at the next one (not when the sequence ended)."""
        state.hits += accepted
        state.trials += accepted + (1 if rejected else 0)
        self.drafted += drafted
        self.accepted += accepted
        self.drafts += 1
