"""What one benchmark request measured, and the summary of one concurrency level.

Definitions (the same as vLLM's ``benchmark_serving``, so numbers compare):

- time to first token (TTFT): request sent → first chunk that carries text;
- inter-token latency (ITL): the time between consecutive text chunks of one request;
- output tokens/s: all completed requests' output tokens / the level's wall time;
- requests/s: completed requests / the level's wall time.

A request's output tokens are the server's ``usage.completion_tokens`` when it reports them,
else its number of text chunks (``tokens_counted_by`` says which).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PERCENTILES = (50, 90, 99)


@dataclass
class Sample:
    """One request's outcome."""

    ok: bool
    latency_s: float
    output_tokens: int = 0
    ttft_s: float | None = None
    gaps_s: list[float] = field(default_factory=list)
    usage_reported: bool = False
    error: str | None = None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile, interpolated between ranks (numpy's default, "linear")."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution_ms(values_s: Sequence[float]) -> dict[str, float | None]:
    """Mean and percentiles in milliseconds; ``None`` when there is nothing to measure."""
    keys = ["mean", *(f"p{q}" for q in PERCENTILES)]
    if not values_s:
        return dict.fromkeys(keys)
    ms = [v * 1000 for v in values_s]
    stats = [sum(ms) / len(ms), *(percentile(ms, q) for q in PERCENTILES)]
    return {key: round(value, 2) for key, value in zip(keys, stats, strict=True)}


def summarize(
    concurrency: int, samples: Sequence[Sample], wall_s: float, rate: float | None = None
) -> dict[str, Any]:
    """One level's entry in the result file: a closed loop at ``concurrency``, or an open
    loop at ``rate`` requests/s (``concurrency`` is then the peak in flight)."""
    done = [s for s in samples if s.ok]
    tokens = sum(s.output_tokens for s in done)
    errors = Counter(s.error or "unknown error" for s in samples if not s.ok)
    return {
        "mode": "closed" if rate is None else "open",
        "rate": rate,
        "concurrency": concurrency,
        "requests": len(samples),
        "completed": len(done),
        "failed": len(samples) - len(done),
        "duration_s": round(wall_s, 3),
        "output_tokens": tokens,
        "mean_output_tokens": round(tokens / len(done), 2) if done else 0,
        "output_tokens_per_s": round(tokens / wall_s, 2) if wall_s > 0 else 0.0,
        "requests_per_s": round(len(done) / wall_s, 3) if wall_s > 0 else 0.0,
        "ttft_ms": distribution_ms([s.ttft_s for s in done if s.ttft_s is not None]),
        "itl_ms": distribution_ms([gap for s in done for gap in s.gaps_s]),
        "latency_ms": distribution_ms([s.latency_s for s in done]),
        "tokens_counted_by": _counted_by(done),
        "errors": [f"{count} x {message}" for message, count in errors.most_common(5)],
    }


def _counted_by(done: Sequence[Sample]) -> str:
    reported = sum(s.usage_reported for s in done)
    if reported == len(done):
        return "usage" if done else "-"
    return "chunks" if reported == 0 else "mixed"
