"""Prompt lookup and the draft planner, without a model."""

from __future__ import annotations

import random

import pytest

from tether.engines.llamacpp import drafter as drafter_module
from tether.engines.llamacpp.drafter import (
    MAX_DRAFT_ROWS,
    SHARED_SLOWDOWN,
    Candidate,
    Drafter,
    DraftState,
    batch_cost,
    may_pay,
    step_cost,
)
from tether.engines.llamacpp.lookup import NGRAM, PromptLookup


def test_lookup_proposes_what_followed_the_latest_match() -> None:
    tokens = [1, 2, 3, 4, 5, 9, 1, 2, 3, 7, 8, 9, 1, 2, 3]
    draft, matched = PromptLookup().propose(tokens, 3)
    assert draft == [7, 8, 9]  # the later of the two earlier "1 2 3"
    assert matched == NGRAM + 1  # "9 1 2 3" matches there, "8 9 1 2 3" does not


def test_lookup_without_a_match_proposes_nothing() -> None:
    assert PromptLookup().propose([1, 2, 3, 4, 5, 6], 4) == ([], 0)
    assert PromptLookup().propose([1, 2], 4) == ([], 0)


def test_lookup_copies_a_loop_past_the_end_of_the_text() -> None:
    draft, _ = PromptLookup().propose([5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7], 6)
    assert draft == [8, 5, 6, 7, 8, 5]


def test_lookup_indexes_tokens_as_they_come() -> None:
    lookup = PromptLookup()
    tokens = [1, 2, 3, 4]
    assert lookup.propose(tokens, 2) == ([], 0)
    tokens += [1, 2, 3]
    assert lookup.propose(tokens, 2)[0] == [4, 1]


def plan_for(drafter: Drafter, states: list[DraftState], rows: int, room: int = 512) -> list[int]:
    """The draft lengths for ``states`` decoding on the first slots of a step of ``rows``
    one-row sequences."""
    tokens = [1, 2, 3, 4, 5, 6, 7, 8] * 8  # every proposal is a long, certain-looking match
    candidates = [Candidate(tokens, state, 64, at) for at, state in enumerate(states)]
    return [len(d) for d in drafter.plan(candidates, [1] * rows, room)]


def test_one_stream_with_a_good_match_drafts() -> None:
    (k,) = plan_for(Drafter(16), [DraftState()], rows=1)
    assert 2 <= k <= 16


def test_a_sequence_whose_drafts_fail_stops_and_later_tries_again() -> None:
    drafter, state = Drafter(16), DraftState()
    for _ in range(3):
        drafter.observe(state, drafted=4, accepted=0, rejected=True)
    assert plan_for(drafter, [state], rows=1) == [0]
    waited = 0
    while plan_for(drafter, [state], rows=1) == [0]:
        waited += 1
        assert waited < 200
    assert waited > 10  # its evidence faded first


def test_a_sequence_whose_drafts_hold_drafts_more() -> None:
    drafter, state = Drafter(32), DraftState()
    (fresh,) = plan_for(drafter, [DraftState()], rows=1)
    for _ in range(10):
        drafter.observe(state, drafted=16, accepted=16, rejected=False)
    (trusted,) = plan_for(drafter, [state], rows=1)
    assert trusted > fresh


def test_a_full_batch_stops_drafting() -> None:
    drafter = Drafter(16)
    assert sum(plan_for(drafter, [DraftState() for _ in range(64)], rows=64)) == 0
    assert sum(plan_for(drafter, [DraftState() for _ in range(2)], rows=2)) > 0


def test_drafts_stay_within_the_room_and_max_tokens() -> None:
    drafter = Drafter(16)
    assert sum(plan_for(drafter, [DraftState(), DraftState()], rows=2, room=3)) <= 3
    tokens = [1, 2, 3, 4] * 8
    (draft,) = drafter.plan([Candidate(tokens, DraftState(), 2, 0)], [1], 512)
    assert len(draft) <= 2


def test_the_step_cost_grows_with_rows() -> None:
    costs = [step_cost(rows) for rows in (1, 2, 8, 64)]
    assert costs == sorted(costs) and costs[0] == 1.0


def test_a_step_carries_at_most_max_draft_rows() -> None:
    drafter, states = Drafter(64), [DraftState() for _ in range(4)]
    for state in states:
        for _ in range(20):
            drafter.observe(state, drafted=32, accepted=32, rejected=False)
    assert sum(plan_for(drafter, states, rows=4)) <= MAX_DRAFT_ROWS


def test_a_trusted_sequence_slows_a_shared_step_at_most_so_much() -> None:
    drafter, state = Drafter(64), DraftState()
    for _ in range(20):
        drafter.observe(state, drafted=32, accepted=32, rejected=False)
    (alone,) = plan_for(drafter, [state], rows=1)
    shared = plan_for(drafter, [state], rows=4)[0]
    assert 0 < shared < alone
    assert batch_cost([1 + shared, 1, 1, 1]) <= SHARED_SLOWDOWN * batch_cost([1] * 4)
    # Beside 15 streams a drafted row costs what a stream's token does: only drafts that
    # are nearly always right pay for it.
    assert plan_for(drafter, [DraftState()], rows=16)[0] == 0


def test_a_batch_is_costed_by_llama_cpps_passes() -> None:
    assert batch_cost([33]) == step_cost(33)
    assert batch_cost([1, 1, 1]) == step_cost(3)
    # The first pass takes a token of each; the drafting sequence's rest is a pass alone.
    assert batch_cost([1, 33]) == step_cost(2) + step_cost(32)
    assert batch_cost([5, 1, 5]) == step_cost(3) + step_cost(4) + step_cost(4)


def test_many_streams_skip_the_lookups_altogether() -> None:
    """At 64 one-row streams no plan can promise MIN_GAIN: the lookups are not even asked
    (they catch up on the tokens they missed when drafting can pay again)."""
    assert not may_pay([1] * 64, MAX_DRAFT_ROWS)
    assert may_pay([1] * 16, MAX_DRAFT_ROWS) and may_pay([1], 16)
    states = [DraftState() for _ in range(64)]
    assert sum(plan_for(Drafter(16), states, rows=64)) == 0
    assert all(state.lookup._indexed == NGRAM for state in states)  # nothing indexed yet
    assert plan_for(Drafter(16), states[:1], rows=1)[0] > 0  # catches up, then drafts


def _scenario(rng: random.Random) -> tuple[list[Candidate], list[int], int]:
    n = rng.choice([rng.randint(1, 4), rng.randint(1, 72)])
    mixed = rng.random() < 0.5  # or every stream one row, as a full batch mostly is
    rows = [rng.choice([1, 1, 1, 2, 4]) if mixed else 1 for _ in range(n)]
    candidates = []
    for at in range(n):
        period = rng.randint(2, 9)
        tokens = [rng.randrange(6) for _ in range(period)] * rng.randint(1, 12)
        tokens += tokens[: rng.choice([0, 0, 1, 2])]  # mostly inside a loop: a match
        state = DraftState(trials=rng.uniform(0, 12))
        state.hits = state.trials * rng.uniform(0.3, 1.0)
        if rows[at] == 1 and rng.random() < 0.9:
            candidates.append(Candidate(tokens, state, rng.randint(0, 64), at))
    return candidates, rows, rng.choice([0, 1, 3, 16, 64, 512])


def test_skipping_hopeless_plans_never_changes_a_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """``may_pay`` is a bound, not a heuristic: over varied steps (2 to 72 streams, mixed
    rows, sequences of every acceptance), the plans are the same with it and without."""
    skipped = drafted = 0
    for seed in range(400):
        candidates, rows, room = _scenario(random.Random(seed))
        with_bound = [len(d) for d in Drafter(16).plan(candidates, rows, room)]
        skipped += not may_pay(rows, min(room, MAX_DRAFT_ROWS))
        candidates, rows, room = _scenario(random.Random(seed))  # fresh states
        with monkeypatch.context() as patch:
            patch.setattr(drafter_module, "may_pay", lambda rows, room: True)
            without = [len(d) for d in Drafter(16).plan(candidates, rows, room)]
        assert with_bound == without, seed
        drafted += sum(without) > 0
    assert skipped > 40 and drafted > 40  # the bound did skip plans; others drafted
