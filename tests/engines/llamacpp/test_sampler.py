"""Log-probability arithmetic (``logsumexp``, ``top_logprobs``) against float64."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tether.engines.llamacpp.sampler import logsumexp, top_logprobs

VOCAB = 262_144


def reference(row: np.ndarray) -> float:
    wide = row.astype(np.float64)
    peak = wide.max()
    return float(peak + np.log(np.exp(wide - peak).sum()))


def logits_like(seed: int, shift: float = 0.0) -> np.ndarray:
    """A row shaped like a language model's: a broad low mass and a few strong tokens."""
    rng = np.random.default_rng(seed)
    row = rng.normal(-2.0, 3.0, VOCAB).astype(np.float32)
    row[rng.integers(0, VOCAB, 5)] = rng.uniform(15, 30, 5).astype(np.float32)
    return row + np.float32(shift)


@pytest.mark.parametrize(
    "shift",
    [
        0.0,
        30.0,  # peak 60: still the direct float32 sum
        150.0,  # exp overflows float32: falls back to the shifted computation
        -150.0,  # exp underflows to zero: same fallback
    ],
)
def test_logsumexp_matches_float64(shift: float) -> None:
    row = logits_like(1, shift)
    scratch = np.empty(VOCAB, np.float32)
    assert logsumexp(row, scratch) == pytest.approx(reference(row), abs=1e-4)


def test_logsumexp_leaves_the_row_alone() -> None:
    row = logits_like(2)
    before = row.copy()
    logsumexp(row, np.empty(VOCAB, np.float32))
    np.testing.assert_array_equal(row, before)


def test_top_logprobs_are_sorted_and_normalised() -> None:
    row = logits_like(3)
    lse = reference(row)
    top = top_logprobs(row, lse, 5)
    assert [t for t, _ in top] == list(np.argsort(row)[::-1][:5])
    assert all(a >= b for (_, a), (_, b) in itertools.pairwise(top))
    assert all(lp <= 0 for _, lp in top)
    assert top_logprobs(row, lse, 0) == []
