"""``bench.metrics``: percentiles and the per-level summary."""

from __future__ import annotations

import numpy as np
import pytest

from tether.bench.metrics import Sample, distribution_ms, percentile, summarize


@pytest.mark.parametrize("q", [0, 50, 90, 99, 100])
def test_percentile_interpolates_like_numpy(q: int) -> None:
    values = [0.3, 0.1, 0.7, 0.2, 1.5, 0.9, 0.4]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_one_value_is_every_percentile() -> None:
    assert distribution_ms([0.25]) == {"mean": 250.0, "p50": 250.0, "p90": 250.0, "p99": 250.0}


def test_nothing_measured_is_null_not_zero() -> None:
    assert distribution_ms([]) == {"mean": None, "p50": None, "p90": None, "p99": None}


def test_a_level_counts_only_completed_requests_in_its_rates() -> None:
    samples = [
        Sample(
            ok=True,
            latency_s=1.0,
            output_tokens=8,
            ttft_s=0.1,
            gaps_s=[0.1] * 7,
            usage_reported=True,
        ),
        Sample(
            ok=True,
            latency_s=1.0,
            output_tokens=8,
            ttft_s=0.3,
            gaps_s=[0.1] * 7,
            usage_reported=True,
        ),
        Sample(ok=False, latency_s=0.01, error="overloaded (HTTP 503)"),
        Sample(ok=False, latency_s=0.01, error="overloaded (HTTP 503)"),
    ]
    level = summarize(4, samples, wall_s=2.0)
    assert (level["requests"], level["completed"], level["failed"]) == (4, 2, 2)
    assert level["output_tokens"] == 16
    assert level["output_tokens_per_s"] == 8.0
    assert level["requests_per_s"] == 1.0
    assert level["ttft_ms"]["p50"] == 200.0
    assert level["itl_ms"]["p99"] == 100.0
    assert level["tokens_counted_by"] == "usage"
    assert level["errors"] == ["2 x overloaded (HTTP 503)"]


def test_a_level_says_when_it_had_to_count_chunks() -> None:
    by_usage = Sample(ok=True, latency_s=1, output_tokens=2, usage_reported=True)
    by_chunks = Sample(ok=True, latency_s=1, output_tokens=2)
    assert summarize(1, [by_chunks], 1)["tokens_counted_by"] == "chunks"
    assert summarize(1, [by_usage, by_chunks], 1)["tokens_counted_by"] == "mixed"
