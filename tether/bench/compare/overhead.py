"""Tether's per-token server overhead at one stream: the client's mean inter-token latency
minus the engine's decode time per token, read from ``/metrics`` around that level, and how
much of that is Python rather than ``llama_decode``. At one stream a decode step makes one
token plus the drafted tokens it accepted (speculative decoding)."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


def decode_timing(url: str) -> dict[str, float]:
    """Tether's decode-step counters from ``/metrics`` (zeros for a server without them)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    wanted = {
        "tether:engine_decode_steps": "steps",
        "tether:engine_decode_step_seconds": "step_s",
        "tether:engine_decode_kernel_seconds": "kernel_s",
        "tether:spec_decode_num_accepted_tokens": "accepted",
    }
    found = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(text):
        if family.name in wanted:
            found[wanted[family.name]] = sum(sample.value for sample in family.samples)
    return found


def overhead(
    before: dict[str, float], after: dict[str, float], itl_mean_ms: float | None
) -> dict[str, Any]:
    """Per-token server overhead at one stream, from the counters around that level."""
    steps = after["steps"] - before["steps"]
    if steps <= 0 or itl_mean_ms is None:
        return {"decode_steps": int(steps)}
    tokens = steps + after.get("accepted", 0.0) - before.get("accepted", 0.0)
    step_ms = 1000 * (after["step_s"] - before["step_s"]) / tokens
    kernel_ms = 1000 * (after["kernel_s"] - before["kernel_s"]) / tokens
    return {
        "decode_steps": int(steps),
        "tokens_per_step": round(tokens / steps, 3),
        "itl_mean_ms": round(itl_mean_ms, 3),
        "step_mean_ms": round(step_ms, 3),
        "kernel_mean_ms": round(kernel_ms, 3),
        "python_in_step_ms": round(step_ms - kernel_ms, 3),
        "overhead_ms": round(itl_mean_ms - step_ms, 3),
    }
