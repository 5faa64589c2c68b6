"""The outputs of ``tether bench``: the result file, the table, the progress bar, the chart.

A result file (``bench-<name>.json``)::

    {"schema": 1, "name": "tether", "url": ..., "model": ..., "created": <ISO 8601>,
     "command": "tether bench ...",  "machine": {"cpu": ..., "cpu_count": ..., ...},
     "settings": {"concurrency": [1, 4], "requests": .., "duration_s": .., "prompt_tokens": ..,
                  "max_tokens": .., "extra_body": {}},
     "prompt": {"target_tokens": .., "measured_tokens": .., "words": .., "method": "probe"},
     "results": [{"concurrency": 1, "output_tokens_per_s": .., "requests_per_s": ..,
                  "ttft_ms": {"mean", "p50", "p90", "p99"}, "itl_ms": {...}, ...}, ...]}

(each entry of ``results`` is ``bench.metrics.summarize``'s). The chart draws any number of
result files together, one line per file, so runs against different servers compare.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tether.bench.load import BenchSettings
from tether.client.api import ClientError

SCHEMA = 1
CHART_NAME = "bench-chart.png"


def document(settings: BenchSettings, measured: dict[str, Any]) -> dict[str, Any]:
    """The result file's content: ``measured`` (from ``bench.load.sweep``) with its context."""
    return {
        "schema": SCHEMA,
        "name": settings.label,
        "url": settings.url,
        "model": measured["model"],
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": settings.command(),
        "machine": machine(),
        "settings": {
            "concurrency": list(settings.concurrency),
            "rates": list(settings.rates),
            "requests": settings.requests,
            "duration_s": settings.duration_s,
            "prompt_tokens": settings.prompt_tokens,
            "max_tokens": settings.max_tokens,
            "extra_body": settings.extra_body,
            "response_format": settings.response_format,
        },
        "prompt": measured["prompt"],
        "results": measured["results"],
    }


def machine() -> dict[str, Any]:
    """Where the benchmark ran (usually the server's machine too): the CPU as the VM shows
    it, with its family and model numbers and the vector features it reports (a VM may hide
    some its CPU has; llama.cpp's build follows what it reports)."""
    info = _cpuinfo()
    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_family": info.get("cpu family"),
        "cpu_model": info.get("model"),
        "cpu_features": sorted(
            f for f in info.get("flags", "").split() if f.startswith(("avx", "amx", "fma"))
        ),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty elsewhere)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "server"


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    """Write ``bench-<name>.json`` and ``bench-<name>.png`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{slug(doc['name'])}"  # not Path.with_suffix: names may contain dots
    json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    chart([doc], png_path)
    return [json_path, png_path]


# -- terminal --------------------------------------------------------------------------


def progress() -> Progress:
    """The live progress bar, on stderr so stdout keeps only the results."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _percentiles(dist: dict[str, float | None]) -> str:
    values = [dist.get(p) for p in ("p50", "p90", "p99")]
    return " / ".join("-" if v is None else f"{v:.0f}" for v in values)


def print_table(doc: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    s = doc["settings"]
    table = Table(
        title=f"{doc['name']}: {doc['model']}, prompt {s['prompt_tokens']} tokens, "
        f"output {s['max_tokens']} tokens" + _constraint(s),
    )
    columns = ["concurrency" if not s.get("rates") else "arrivals", "ok", "output tok/s", "req/s"]
    columns += ["TTFT ms p50/90/99", "ITL ms p50/90/99"]
    for column in columns:
        table.add_column(column, justify="right")
    for r in doc["results"]:
        table.add_row(
            level_name(r),
            f"{r['completed']}/{r['requests']}",
            f"{r['output_tokens_per_s']:.1f}",
            f"{r['requests_per_s']:.2f}",
            _percentiles(r["ttft_ms"]),
            _percentiles(r["itl_ms"]),
        )
    console.print(table)
    for r in doc["results"]:
        for error in r["errors"]:
            console.print(f"{level_name(r)}: {error}", style="red", markup=False)


def _constraint(settings: dict[str, Any]) -> str:
    fmt = settings.get("response_format")
    return f" at most, response_format {fmt['type']}" if fmt else ""


def level_name(result: dict[str, Any]) -> str:
    """``16`` for a closed-loop level, ``1.2/s (peak 5)`` for an open-loop one."""
    if result.get("mode") == "open":
        return f"{result['rate']:g}/s (peak {result['concurrency']})"
    return str(result["concurrency"])


def closed_loop(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A result file's closed-loop levels (files from before open loops have only these)."""
    return [r for r in doc["results"] if r.get("mode", "closed") == "closed"]


# -- chart -----------------------------------------------------------------------------


def chart_files(paths: Sequence[Path], out: Path) -> Path:
    """Chart several result files together into ``out/bench-chart.png``."""
    docs = []
    for path in paths:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot read result file {path}: {exc}") from exc
        if not isinstance(doc, dict) or "results" not in doc:
            raise ClientError(f"{path} is not a tether bench result file")
        docs.append(doc)
    out.mkdir(parents=True, exist_ok=True)
    target = out / CHART_NAME
    chart(docs, target)
    return target


def _series(doc: dict[str, Any], metric: str, key: str | None) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in closed_loop(doc):
        value = r[metric] if key is None else r[metric].get(key)
        xs.append(r["concurrency"])
        ys.append(float("nan") if value is None else float(value))
    return xs, ys


PANELS = (
    ("output_tokens_per_s", "output tokens/s (higher is better)"),
    ("ttft_ms", "time to first token, ms (solid p50, dashed p99)"),
    ("itl_ms", "inter-token latency, ms (solid p50, dashed p99)"),
)


def chart(docs: Sequence[dict[str, Any]], path: Path) -> None:
    """Throughput, TTFT and ITL against concurrency; one colour per result file."""
    # The object-oriented API, not pyplot: no global figure state, no GUI backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.6), layout="constrained")
    axes = fig.subplots(1, len(PANELS))
    levels = sorted({r["concurrency"] for doc in docs for r in closed_loop(doc)})
    for ax, (metric, title) in zip(axes, PANELS, strict=True):
        for i, doc in enumerate(docs):
            color = f"C{i}"
            if metric == "output_tokens_per_s":
                ax.plot(*_series(doc, metric, None), "o-", color=color, label=doc["name"])
                continue
            ax.plot(*_series(doc, metric, "p50"), "o-", color=color, label=doc["name"])
            ax.plot(*_series(doc, metric, "p99"), "x--", color=color, alpha=0.6)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("concurrent requests")
        if len(levels) > 1:
            ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(level) for level in levels])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(_chart_title(docs))
    fig.savefig(path, dpi=110)


def _chart_title(docs: Sequence[dict[str, Any]]) -> str:
    shapes = {(d["settings"]["prompt_tokens"], d["settings"]["max_tokens"]) for d in docs}
    if len(shapes) != 1:
        return "tether bench (the runs differ in prompt or output length: see their JSON files)"
    prompt_tokens, max_tokens = shapes.pop()
    models = {d.get("model", "?") for d in docs}
    model = f"{models.pop()}, " if len(models) == 1 else ""
    return f"tether bench: {model}prompt {prompt_tokens} tokens, output {max_tokens} tokens"
