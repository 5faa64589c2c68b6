"""The numbers a comparison reports: for every metric, the median over rounds of each
server's value and of the per-round ratios (Tether / llama-server), and issue 13's verdict."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from tether.bench.compare.settings import LLAMA, TETHER


@dataclass(frozen=True)
class Target:
    """One line of the verdict: ``metric`` compared as ``ratio`` ≥ or ≤ ``bound``."""

    label: str
    key: str
    bound: float
    higher_is_better: bool

    def met(self, ratio: float | None) -> bool | None:
        if ratio is None:
            return None
        return ratio >= self.bound if self.higher_is_better else ratio <= self.bound

    @property
    def bound_text(self) -> str:
        return ("≥ " if self.higher_is_better else "≤ ") + f"{self.bound:g}×"


# Issue 13's targets (ratios Tether / llama-server).
TARGETS = (
    Target("closed loop, 1 stream: output tokens/s", "closed_1_tps", 1.03, True),
    Target("closed loop, 16 streams: output tokens/s", "closed_16_tps", 1.10, True),
    Target("closed loop, 64 streams: output tokens/s", "closed_64_tps", 1.15, True),
    Target("open loop: time to first token p50", "open_ttft_p50", 0.4, False),
    Target("open loop: inter-token latency p99", "open_itl_p99", 0.6, False),
)
OVERHEAD_TARGET_MS = 0.3


def metrics_of(run: dict[str, Any]) -> dict[str, float | None]:
    """The numbers compared, flat: ``closed_<N>_tps``, ``closed_<N>_ttft_p50``, ``open_*``."""
    out: dict[str, float | None] = {}
    for r in run["results"]:
        if r["mode"] == "closed":
            c = r["concurrency"]
            out[f"closed_{c}_tps"] = r["output_tokens_per_s"]
            out[f"closed_{c}_ttft_p50"] = r["ttft_ms"]["p50"]
            out[f"closed_{c}_itl_p99"] = r["itl_ms"]["p99"]
        else:
            out["open_tps"] = r["output_tokens_per_s"]
            for q in ("p50", "p99"):
                out[f"open_ttft_{q}"] = r["ttft_ms"][q]
                out[f"open_itl_{q}"] = r["itl_ms"][q]
    return out


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def _metric_rows(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_round: dict[int, dict[str, dict[str, float | None]]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["name"]] = metrics_of(run)
    keys = list(dict.fromkeys(k for run in runs for k in metrics_of(run)))
    rows: dict[str, dict[str, Any]] = {}
    for key in keys:
        llama = [pair.get(LLAMA, {}).get(key) for pair in by_round.values()]
        tether = [pair.get(TETHER, {}).get(key) for pair in by_round.values()]
        ratios = [
            t / ll if t is not None and ll else None for t, ll in zip(tether, llama, strict=True)
        ]
        rows[key] = {
            LLAMA: _median(llama),
            TETHER: _median(tether),
            "ratio": _median(ratios),
            "ratios": [None if x is None else round(x, 3) for x in ratios],
        }
    return rows


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rows = _metric_rows(runs)
    overheads = [run["overhead"] for run in runs if "overhead_ms" in run.get("overhead", {})]
    overhead = {
        key: _median([o.get(key) for o in overheads])
        for key in (
            "overhead_ms",
            "step_mean_ms",
            "kernel_mean_ms",
            "python_in_step_ms",
            "itl_mean_ms",
            "tokens_per_step",
        )
    }
    verdict = [
        {
            "target": t.label,
            "bound": t.bound_text,
            "ratio": rows.get(t.key, {}).get("ratio"),
            "met": t.met(rows.get(t.key, {}).get("ratio")),
        }
        for t in TARGETS
    ]
    overhead_ms = overhead["overhead_ms"]
    verdict.append(
        {
            "target": "per-token server overhead at 1 stream (ms)",
            "bound": f"≤ {OVERHEAD_TARGET_MS:g} ms",
            "ratio": overhead_ms,
            "met": None if overhead_ms is None else overhead_ms <= OVERHEAD_TARGET_MS,
        }
    )
    return {"metrics": rows, "overhead": overhead, "targets": verdict}
