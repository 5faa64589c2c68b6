"""What a comparison shows and writes: the summary table and verdict on the terminal, and
``compare.json``, ``compare.png`` (the chart) and ``compare.md`` (the Markdown table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tether.bench.compare.quoting import QUOTE_MAX_TOKENS
from tether.bench.compare.settings import LLAMA, TETHER
from tether.bench.compare.summary import TARGETS

_LABELS = {
    "tps": ("output tokens/s", True),
    "ttft_p50": ("time to first token p50, ms", False),
    "ttft_p99": ("time to first token p99, ms", False),
    "itl_p50": ("inter-token latency p50, ms", False),
    "itl_p99": ("inter-token latency p99, ms", False),
}


def _describe(key: str, rate: float) -> str:
    mode, rest = key.split("_", 1)
    if mode == "closed":
        level, metric = rest.split("_", 1)
        streams = "1 stream" if level == "1" else f"{level} streams"
        return f"closed loop, {streams}: {_LABELS[metric][0]}"
    return f"open loop at {rate:g} req/s: {_LABELS[rest][0]}"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _constraint(settings: dict[str, Any]) -> str:
    fmt = settings.get("response_format")
    return f" at most (response_format {fmt['type']})" if fmt else ""


def machine_line(doc: dict[str, Any]) -> str:
    """Where the numbers hold: the CPU, and the CPU features llama.cpp was built with (as
    Tether's build reports them; llama-server is built from the same sources with the
    machine's native flags)."""
    m, b = doc["machine"], doc.get("build", {})
    features = b.get("tether_system_info", "").removeprefix("CPU : ")
    version = b.get("llama_cpp_python", "?")
    cpu = m["cpu"] + (
        f" (family {m['cpu_family']}, model {m['cpu_model']})" if m.get("cpu_family") else ""
    )
    return f"Machine: {cpu}, {m.get('cpu_count', '?')} CPUs; llama.cpp {version}: {features}"


def print_summary(doc: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    s = doc["settings"]
    table = Table(
        title=f"{LLAMA} vs {TETHER}: prompt {s['prompt_tokens']} tokens, output "
        f"{s['max_tokens']} tokens{_constraint(s)}, medians of {s['rounds']} interleaved rounds"
    )
    for column in ("metric", LLAMA, TETHER, "ratio", "per round"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, row in doc["summary"]["metrics"].items():
        table.add_row(
            _describe(key, s["open_rate"]),
            _fmt(row[LLAMA]),
            _fmt(row[TETHER]),
            _fmt(row["ratio"], 2),
            " / ".join(_fmt(x, 2) for x in row["ratios"]),
        )
    console.print(table)
    console.print(machine_line(doc))
    o = doc["summary"]["overhead"]
    if o["overhead_ms"] is not None:
        console.print(
            f"Tether at 1 stream: client inter-token mean {o['itl_mean_ms']:.2f} ms = engine "
            f"decode time per token {o['step_mean_ms']:.2f} ms (llama_decode "
            f"{o['kernel_mean_ms']:.2f} "
            f"+ Python {o['python_in_step_ms']:.2f}) + server overhead {o['overhead_ms']:.2f} ms"
        )
    verdict = Table(title="issue 13 targets (Tether / llama-server)")
    for column in ("target", "bound", "measured", "met"):
        verdict.add_column(column, justify="left" if column == "target" else "right")
    for t in doc["summary"]["targets"]:
        met = {True: "yes", False: "NO", None: "-"}[t["met"]]
        verdict.add_row(t["target"], t["bound"], _fmt(t["ratio"], 2), met)
    console.print(verdict)
    if "quoting" in doc:
        _print_quoting(doc, console)


def _print_quoting(doc: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    q, s = doc["quoting"]["summary"], doc["settings"]
    table = Table(
        title=f"quoting workload: 1 stream, a 600-token report repeated with one name changed, "
        f"greedy, up to {QUOTE_MAX_TOKENS} tokens, medians of {s['rounds']} rounds"
    )
    for column in ("server", "chars/s", "Tether / it", "acceptance", "tokens/step", "ms/step"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for name, rate in q["chars_per_s"].items():
        spec = q["speculation"].get(name, {})
        table.add_row(
            name,
            _fmt(rate),
            _fmt(q["tether_ratio"].get(name), 2),
            _fmt(spec.get("acceptance"), 2),
            _fmt(spec.get("tokens_per_step"), 2),
            _fmt(spec.get("kernel_ms_per_step"), 1),
        )
    console.print(table)
    same = q["same_text_with_and_without"]
    console.print(f"Tether's answers, the same with and without speculation: {same}")


def chart(doc: dict[str, Any], path: Path) -> None:
    """Closed-loop throughput against concurrency (every round's points and the median
    line), and the open loop's latency percentiles side by side."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.8), layout="constrained")
    tput, lat = fig.subplots(1, 2)
    rows = doc["summary"]["metrics"]
    levels = doc["settings"]["concurrency"]
    for i, name in enumerate((LLAMA, TETHER)):
        color = f"C{i}"
        for run in doc["runs"]:
            if run["name"] == name:
                points = [(r["concurrency"], r["output_tokens_per_s"])
                          for r in run["results"] if r["mode"] == "closed"]  # fmt: skip
                tput.plot(*zip(*points, strict=True), "o", color=color, alpha=0.35)
        medians = [rows[f"closed_{c}_tps"][name] for c in levels]
        tput.plot(levels, medians, "-", color=color, label=f"{name} (median)")
    tput.set_xscale("log", base=2)
    tput.set_xticks(levels, [str(c) for c in levels])
    tput.set_xlabel("concurrent streams (closed loop)")
    tput.set_title("output tokens/s (higher is better)", fontsize=10)
    tput.set_ylim(bottom=0)
    tput.grid(alpha=0.3)
    tput.legend()
    keys = ["open_ttft_p50", "open_ttft_p99", "open_itl_p50", "open_itl_p99"]
    width = 0.38
    for i, name in enumerate((LLAMA, TETHER)):
        values = [rows.get(k, {}).get(name) or 0.0 for k in keys]
        xs = [k + (i - 0.5) * width for k in range(len(keys))]
        lat.bar(xs, values, width, color=f"C{i}", label=name)
    lat.set_xticks(range(len(keys)), ["TTFT p50", "TTFT p99", "ITL p50", "ITL p99"])
    lat.set_yscale("log")
    lat.set_title(
        f"open loop, {doc['settings']['open_rate']:g} req/s: latency, ms (lower is better)",
        fontsize=10,
    )
    lat.grid(alpha=0.3, axis="y")
    lat.legend()
    fig.suptitle(
        f"tether bench compare: prompt {doc['settings']['prompt_tokens']} tokens, output "
        f"{doc['settings']['max_tokens']} tokens, {doc['machine']['cpu']}, "
        f"{doc['settings']['threads']} threads"
    )
    fig.savefig(path, dpi=110)


def markdown(doc: dict[str, Any]) -> str:
    """The summary as a Markdown table (what the README's results table is pasted from)."""
    rate = doc["settings"]["open_rate"]
    bounds = {t.key: t.bound_text for t in TARGETS}
    lines = [
        f"| metric | {LLAMA} | Tether | Tether / {LLAMA} (per round) | target |",
        "|---|---|---|---|---|",
    ]
    for key, row in doc["summary"]["metrics"].items():
        rounds = ", ".join(_fmt(x, 2) for x in row["ratios"])
        lines.append(
            f"| {_describe(key, rate)} | {_fmt(row[LLAMA])} | {_fmt(row[TETHER])} "
            f"| {_fmt(row['ratio'], 2)} ({rounds}) | {bounds.get(key, '')} |"
        )
    if "quoting" in doc:
        lines += ["", *_quoting_markdown(doc["quoting"]["summary"])]
    lines += ["", machine_line(doc)]
    return "\n".join(lines) + "\n"


def _quoting_markdown(q: dict[str, Any]) -> list[str]:
    lines = [
        "| quoting workload, 1 stream | chars/s | Tether / it | acceptance | tokens/step |",
        "|---|---|---|---|---|",
    ]
    for name, rate in q["chars_per_s"].items():
        spec = q["speculation"].get(name, {})
        lines.append(
            f"| {name} | {_fmt(rate)} | {_fmt(q['tether_ratio'].get(name), 2)} "
            f"| {_fmt(spec.get('acceptance'), 2)} | {_fmt(spec.get('tokens_per_step'), 2)} |"
        )
    return lines


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path, md_path = out / "compare.json", out / "compare.png", out / "compare.md"
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    md_path.write_text(markdown(doc))
    if not doc["summary"]["metrics"]:  # the quoting workload alone: nothing to chart
        return [json_path, md_path]
    chart(doc, png_path)
    return [json_path, png_path, md_path]
