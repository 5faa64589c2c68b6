"""``Drafter``: how many drafted tokens each decoding sequence gets this step (speculative
decoding without a draft model).

Each drafted token costs a row of the batch: on the embedded model a row is most of a
decode (the output head over 262,144 tokens), so a draft pays only when it is accepted
often. ``plan`` weighs the two for every sequence of the step:

- what a row costs: ``batch_cost``, a decode step's time by its rows relative to one row,
  with llama.cpp's split of a batch into passes over the weights;
- what a drafted token is worth: at depth ``j`` of a sequence whose drafts are accepted at
  rate ``a``, ``a**j`` tokens. The rate is the sequence's own evidence, fading, added to a
  prior that grows with how long the match behind the proposal is.

The increments are taken best first, and the plan stops where tokens per unit of time peaks.
A sequence whose drafts are mostly wrong stops drafting (and tries again once its evidence
has faded); in a batch of many streams, where a row already makes a whole token, only drafts
that are nearly always right are worth a row (0.86 at 16 streams; at 64 none is, and
``plan`` then skips the lookups: ``may_pay``), both without a switch. Two bounds keep a
drafting sequence from costing the others: a step that other streams share may take at most
``SHARED_SLOWDOWN`` times what it would without drafts, and a step carries at most
``MAX_DRAFT_ROWS`` drafted tokens (each asks for a logits row, and llama.cpp's output buffer
keeps the size of the largest step).

The plan depends on the sequences in the step alone, never on timings measured or on
earlier requests: a request alone gives the same batches, so the same logits and the same
tokens, every time (a seed stays reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tether.engines.llamacpp.lookup import MAX_MATCH, NGRAM, PromptLookup

# The prior acceptance of a drafted token by the length of the match behind it (from NGRAM
# tokens to MAX_MATCH), and how many drafted tokens of evidence it weighs.
_PRIOR_LOW, _PRIOR_HIGH, _PRIOR_WEIGHT = 0.6, 0.9, 4.0
# Per step, how much of a sequence's evidence is kept.
_KEEP = 0.95
# Drafted tokens one step may carry, and how much slower drafts may make a shared step.
MAX_DRAFT_ROWS = 64
SHARED_SLOWDOWN = 3.0
# What a plan must promise over no drafts, in tokens per unit of time: the cost shape is a
# model, and a draft that only breaks even by it lost 4% at 64 streams when measured.
MIN_GAIN = 1.05


def step_cost(rows: int) -> float:
    """A decode step's time by rows (logits asked for), relative to one row: the embedded
    model on a 2-core AMD EPYC (13.8 ms at 1 row, 24.6 at 2, 50.6 at 8, 79 at 16, 140 at
    32, 262 at 64; 16 streams of one row each cost what one stream of 16 rows does; issue
    21). A larger model spends less of a step on its output head, so this shape is a
    conservative one there."""
    return 1.0 if rows <= 1 else 1.3 + 0.277 * rows


def batch_cost(rows: list[int]) -> float:
    """A decode step's time for these rows per sequence (in slot order, on consecutive
    slots), relative to one row. With a KV stream per sequence llama.cpp splits a batch
    into ubatches that take the same number of tokens from each of a run of consecutive
    sequences (``split_equal``), each a pass over the weights: a sequence with drafts
    beside sequences without is two passes."""
    left = list(rows)
    cost = 0.0
    i = 0
    while i < len(left):
        if left[i] == 0:
            i += 1
            continue
        j = i
        while j < len(left) and left[j] > 0:
            j += 1
        take = min(left[i:j])
        cost += step_cost(take * (j - i))
        for k in range(i, j):
            left[k] -= take
    return cost


def may_pay(rows: list[int], room: int) -> bool:
    """Whether any plan of at most ``room`` drafted tokens could beat no drafts by
    ``MIN_GAIN`` for a step whose decode chunks take ``rows``: the bound of every drafted
    token accepted, all in one pass. A drafted token is worth at most one token, a batch
    costs at least ``step_cost`` of its rows in one pass, and tokens per unit of time grow
    with drafts in one pass, so ``room`` drafts bound them all. False at 64 streams: the
    plan is then skipped, its result the same."""
    tokens = sum(rows)
    if tokens == 0:  # no decode chunk: nothing to draft for
        return False
    best = (tokens + room) / step_cost(tokens + room)
    return best > tokens / batch_cost(rows) * MIN_GAIN


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
    """A decoding sequence that may draft: its tokens, state, most tokens to draft, and
    which of the step's decode chunks (in slot order) is its."""

    tokens: list[int]
    state: DraftState
    limit: int
    at: int


class Drafter:
    """Plans each step's drafts and keeps each sequence's evidence; counts them for
    ``/metrics``."""

    def __init__(self, max_draft: int) -> None:
        self.max_draft = max_draft
        self.drafted = 0  # totals, for /metrics
        self.accepted = 0
        self.drafts = 0  # verifications: chunks that carried drafted tokens

    def plan(self, candidates: list[Candidate], rows: list[int], room: int) -> list[list[int]]:
        """Each candidate's drafted tokens (often none) for a step whose decode chunks
        take ``rows`` rows each (in slot order); at most ``room`` drafted tokens in all."""
        room = min(room, MAX_DRAFT_ROWS)
        for cand in candidates:  # evidence fades every step, drafted or not
            cand.state.hits *= _KEEP
            cand.state.trials *= _KEEP
        if room <= 0 or not may_pay(rows, room):
            return [[] for _ in candidates]  # lookups catch up when they are next asked
        proposals: list[list[int]] = []
        gains: list[tuple[float, int]] = []
        for i, cand in enumerate(candidates):
            state = cand.state
            draft, matched = state.lookup.propose(cand.tokens, min(self.max_draft, cand.limit))
            proposals.append(draft)
            rate = state.rate(prior(matched)) if draft else 0.0
            gain = 1.0
            for _ in draft:
                gain *= rate
                gains.append((gain, i))
        taken = [0] * len(candidates)
        if gains:
            gains.sort(key=lambda g: -g[0])
            for _, i in gains[: self._best_count(gains[:room], candidates, rows)]:
                taken[i] += 1
        return [draft[:k] for draft, k in zip(proposals, taken, strict=True)]

    @staticmethod
    def _best_count(
        gains: list[tuple[float, int]], candidates: list[Candidate], base: list[int]
    ) -> int:
        """How many of the increments (best first) make the most tokens per unit of time,
        within the slowdown a shared step allows."""
        rows, tokens = list(base), float(sum(base))
        cost = batch_cost(rows)
        bound = cost * SHARED_SLOWDOWN if len(rows) > 1 else float("inf")
        best, best_n = tokens / cost * MIN_GAIN, 0
        for n, (gain, i) in enumerate(gains, 1):
            rows[candidates[i].at] += 1
            tokens += gain
            cost = batch_cost(rows)
            if cost > bound:
                break
            if tokens / cost > best:
                best, best_n = tokens / cost, n
        return best_n

    def observe(self, state: DraftState, drafted: int, accepted: int, rejected: bool) -> None:
        """A verified draft: ``accepted`` of its ``drafted`` tokens were kept; ``rejected``
        when the sampler chose otherwise at the next one (not when the sequence ended)."""
        state.hits += accepted
        state.trials += accepted + (1 if rejected else 0)
        self.drafted += drafted
        self.accepted += accepted
        self.drafts += 1
