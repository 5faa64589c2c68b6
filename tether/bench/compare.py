"""``tether bench compare``: Tether against llama.cpp's own ``llama-server``, side by side.

    tether bench compare [--rounds 3] [--concurrency 1,4,16,64] [--out bench-results/compare]

Builds ``llama-server`` from the llama.cpp that llama-cpp-python vendors (``llama_server``),
then loads it and ``tether serve`` one after the other on the same GGUF, the same threads,
slots, context and batch. Each round starts both processes afresh (an idle one uses no CPU)
and runs every load on one and then on the other, the order alternating from load to load
and round to round, so that neither side always runs on a CPU the other has just heated.
The loads, per server and round:

- closed loop at each concurrency level N: 8 requests at N=1, 3×N otherwise;
- open loop: ``--open-requests`` Poisson arrivals at ``--load`` × llama-server's capacity
  (its best closed-loop requests/s in the first round), the same arrival times for both;
- Tether only: its decode-step timing from ``/metrics`` around the 1-stream level, for the
  per-token server overhead (client-observed mean inter-token latency minus the engine's
  mean decode step, and how much of that step is Python rather than ``llama_decode``).

Every request streams a completion of ``--prompt-tokens`` prompt tokens and exactly
``--max-tokens`` output tokens (``ignore_eos``, greedy), as ``tether bench`` does; no prompt
shares a prefix with another. The summary takes, for every metric, the median over rounds
of each server's value and the median of the per-round ratios (Tether / llama-server), and
checks the targets of issue 13. Writes ``compare.json`` (every run's full result and the
summary), ``compare.png`` and ``compare.md`` (the summary as a Markdown table) into ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tether.bench import llama_server, report
from tether.bench.load import BenchSettings, sweep
from tether.client.api import ClientError

LLAMA, TETHER = "llama-server", "tether"
READY_TIMEOUT_S = 600.0


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


# Issue 13's targets (ratios Tether / llama-server).
TARGETS = (
    Target("closed loop, 1 stream: output tokens/s", "closed_1_tps", 1.03, True),
    Target("closed loop, 16 streams: output tokens/s", "closed_16_tps", 1.10, True),
    Target("closed loop, 64 streams: output tokens/s", "closed_64_tps", 1.15, True),
    Target("open loop: time to first token p50", "open_ttft_p50", 0.4, False),
    Target("open loop: inter-token latency p99", "open_itl_p99", 0.6, False),
)
OVERHEAD_TARGET_MS = 0.3


@dataclass(frozen=True)
class CompareSettings:
    rounds: int = 3
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    open_requests: int = 48
    load: float = 0.75
    rate: float | None = None  # fixed open-loop rate instead of load × capacity
    prompt_tokens: int = 128
    max_tokens: int = 128
    model: str | None = None  # a GGUF path; None: the embedded default model
    threads: int = 0
    slots: int = 64
    ctx_per_slot: int = 4096
    batch: int = 512
    out: Path = Path("bench-results/compare")
    cache: Path = field(default_factory=llama_server.default_cache)
    llama_server_binary: Path | None = None

    @property
    def n_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    def closed_requests(self, concurrency: int) -> int:
        return 8 if concurrency == 1 else 3 * concurrency


# -- servers ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(name: str, argv: list[str], port: int, log_path: Path) -> Iterator[str]:
    """Start a server process, wait until ``/health`` says 200, yield its URL, stop it."""
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(name, process, url, log_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(name: str, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise ClientError(f"{name} exited with {process.returncode}:\n" + "\n".join(tail))
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ClientError(f"{name} was not ready after {READY_TIMEOUT_S:.0f} s (log: {log_path})")


def tether_argv(s: CompareSettings, model: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "tether", "serve",
        "--port", str(port),
        "--model", model,
        "--threads", str(s.n_threads),
        "--max-seqs", str(s.slots),
        "--ctx-size", str(s.ctx_per_slot),
        "--batch-tokens", str(s.batch),
        "--no-store",
        "--log-level", "warning",
    ]  # fmt: skip


def llama_argv(s: CompareSettings, binary: Path, model: str, port: int) -> list[str]:
    return llama_server.command(
        binary,
        model,
        port,
        threads=s.n_threads,
        slots=s.slots,
        ctx_per_slot=s.ctx_per_slot,
        batch=s.batch,
    )


# -- one server run --------------------------------------------------------------------


def decode_timing(url: str) -> dict[str, float]:
    """Tether's decode-step counters from ``/metrics`` (zeros for a server without them)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    wanted = {
        "tether:engine_decode_steps": "steps",
        "tether:engine_decode_step_seconds": "step_s",
        "tether:engine_decode_kernel_seconds": "kernel_s",
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
    step_ms = 1000 * (after["step_s"] - before["step_s"]) / steps
    kernel_ms = 1000 * (after["kernel_s"] - before["kernel_s"]) / steps
    return {
        "decode_steps": int(steps),
        "itl_mean_ms": round(itl_mean_ms, 3),
        "step_mean_ms": round(step_ms, 3),
        "kernel_mean_ms": round(kernel_ms, 3),
        "python_in_step_ms": round(step_ms - kernel_ms, 3),
        "overhead_ms": round(itl_mean_ms - step_ms, 3),
    }


class ServerRun:
    """The loads of one server process, in order, with prompts that never repeat."""

    def __init__(self, s: CompareSettings, name: str, url: str, bar: Any) -> None:
        self.s, self.name, self.url, self.bar = s, name, url, bar
        self.next_prompt = 1
        self.results: list[dict[str, Any]] = []
        self.model = ""

    def _sweep(self, **fields: Any) -> dict[str, Any]:
        settings = BenchSettings(
            url=self.url,
            prompt_tokens=self.s.prompt_tokens,
            max_tokens=self.s.max_tokens,
            duration_s=3600,
            name=self.name,
            **fields,
        )
        measured = asyncio.run(sweep(settings, self.bar, first_prompt=self.next_prompt))
        self.next_prompt = measured["next_prompt"]
        self.model = measured["model"]
        self.results.extend(measured["results"])
        return measured

    def closed(self, concurrency: int) -> dict[str, Any]:
        requests = self.s.closed_requests(concurrency)
        result: dict[str, Any] = self._sweep(concurrency=(concurrency,), requests=requests)[
            "results"
        ][0]
        return result

    def open(self, rate: float) -> dict[str, Any]:
        result: dict[str, Any] = self._sweep(rates=(rate,), requests=self.s.open_requests)[
            "results"
        ][0]
        return result


def run_round(
    s: CompareSettings,
    urls: dict[str, str],
    round_: int,
    rate: Callable[[dict[str, ServerRun]], float],
    bar: Any,
) -> list[dict[str, Any]]:
    """One round: at every level, one server's load and then the other's, the order
    alternating from level to level and round to round, so that neither always runs first
    (a CPU that slows as it heats, or a noisy neighbour, would otherwise favour one side).
    Closed-loop levels first, then the open loop at ``rate(this round's runs)``."""
    runs = {name: ServerRun(s, name, url, bar) for name, url in urls.items()}
    extra: dict[str, dict[str, Any]] = {name: {} for name in urls}
    levels: list[int | None] = [*s.concurrency, None]  # None: the open loop
    for i, level in enumerate(levels):
        order = [LLAMA, TETHER] if (round_ + i) % 2 else [TETHER, LLAMA]
        for name in order:
            run = runs[name]
            if level is None:
                run.open(rate(runs))
                continue
            before = decode_timing(run.url) if name == TETHER and level == 1 else None
            result = run.closed(level)
            if before is not None:
                itl = result["itl_ms"]["mean"]
                extra[name]["overhead"] = overhead(before, decode_timing(run.url), itl)
    return [
        {"name": name, "round": round_, "model": run.model, "results": run.results, **extra[name]}
        for name, run in runs.items()
    ]


# -- the comparison --------------------------------------------------------------------


def capacity(results: list[dict[str, Any]]) -> float:
    """A server's capacity: its best closed-loop requests/s."""
    return max(float(r["requests_per_s"]) for r in results if r["mode"] == "closed")


def compare(s: CompareSettings, say: Callable[[str], None] = print) -> dict[str, Any]:
    model = s.model or _embedded_model()
    binary = s.llama_server_binary or llama_server.ensure_built(s.cache, say)
    logs = s.out / "logs"
    runs: list[dict[str, Any]] = []
    rate = s.rate

    def open_rate(this_round: dict[str, ServerRun]) -> float:
        nonlocal rate
        if rate is None:  # llama-server's first round sets it for every round
            rate = round(s.load * capacity(this_round[LLAMA].results), 3)
        return rate

    with report.progress() as bar:
        for r in range(1, s.rounds + 1):
            ports = {LLAMA: _free_port(), TETHER: _free_port()}
            argvs = {
                LLAMA: llama_argv(s, binary, model, ports[LLAMA]),
                TETHER: tether_argv(s, model, ports[TETHER]),
            }
            # Both processes are up for the whole round; an idle one uses no CPU.
            with (
                running(LLAMA, argvs[LLAMA], ports[LLAMA], logs / f"{LLAMA}-round{r}.log") as a,
                running(TETHER, argvs[TETHER], ports[TETHER], logs / f"{TETHER}-round{r}.log") as b,
            ):
                for run in run_round(s, {LLAMA: a, TETHER: b}, r, open_rate, bar):
                    run["command"] = " ".join(argvs[run["name"]])
                    runs.append(run)
    assert rate is not None
    return {
        "schema": 1,
        "kind": "compare",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "build": {
            "llama_cpp_python": llama_server.version(),
            "llama_server_cmake_flags": (binary.parent / "cmake-flags.txt").read_text().split()
            if (binary.parent / "cmake-flags.txt").is_file()
            else None,
            "tether_system_info": _system_info(),
        },
        "settings": {
            "rounds": s.rounds,
            "concurrency": list(s.concurrency),
            "closed_requests": {str(c): s.closed_requests(c) for c in s.concurrency},
            "open_requests": s.open_requests,
            "open_rate": rate,
            "load": None if s.rate else s.load,
            "prompt_tokens": s.prompt_tokens,
            "max_tokens": s.max_tokens,
            "model": model,
            "threads": s.n_threads,
            "slots": s.slots,
            "ctx_per_slot": s.ctx_per_slot,
            "batch": s.batch,
        },
        "runs": runs,
        "summary": summarize(runs),
    }


def _embedded_model() -> str:
    from tether.engines.llamacpp.gguf import resolve_model_path

    return resolve_model_path(None)


def _system_info() -> str:
    from tether.engines.llamacpp.runner import system_info

    return system_info()


# -- summary ---------------------------------------------------------------------------


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


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
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
    overheads = [run["overhead"] for run in runs if "overhead_ms" in run.get("overhead", {})]
    overhead_ms = _median([o["overhead_ms"] for o in overheads])
    verdict = []
    for t in TARGETS:
        ratio = rows.get(t.key, {}).get("ratio")
        verdict.append(
            {
                "target": t.label,
                "bound": ("≥ " if t.higher_is_better else "≤ ") + f"{t.bound:g}×",
                "ratio": ratio,
                "met": t.met(ratio),
            }
        )
    verdict.append(
        {
            "target": "per-token server overhead at 1 stream (ms)",
            "bound": f"≤ {OVERHEAD_TARGET_MS:g} ms",
            "ratio": overhead_ms,
            "met": None if overhead_ms is None else overhead_ms <= OVERHEAD_TARGET_MS,
        }
    )
    return {
        "metrics": rows,
        "overhead": {
            "overhead_ms": overhead_ms,
            "step_mean_ms": _median([o["step_mean_ms"] for o in overheads]),
            "kernel_mean_ms": _median([o["kernel_mean_ms"] for o in overheads]),
            "python_in_step_ms": _median([o["python_in_step_ms"] for o in overheads]),
            "itl_mean_ms": _median([o["itl_mean_ms"] for o in overheads]),
        },
        "targets": verdict,
    }


# -- output ----------------------------------------------------------------------------

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


def print_summary(doc: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    s = doc["settings"]
    table = Table(
        title=f"{LLAMA} vs {TETHER}: prompt {s['prompt_tokens']} tokens, output "
        f"{s['max_tokens']} tokens, medians of {s['rounds']} interleaved rounds"
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
    o = doc["summary"]["overhead"]
    if o["overhead_ms"] is not None:
        console.print(
            f"Tether at 1 stream: client inter-token mean {o['itl_mean_ms']:.2f} ms = engine "
            f"decode step {o['step_mean_ms']:.2f} ms (llama_decode {o['kernel_mean_ms']:.2f} "
            f"+ Python {o['python_in_step_ms']:.2f}) + server overhead {o['overhead_ms']:.2f} ms"
        )
    verdict = Table(title="issue 13 targets (Tether / llama-server)")
    for column in ("target", "bound", "measured", "met"):
        verdict.add_column(column, justify="left" if column == "target" else "right")
    for t in doc["summary"]["targets"]:
        met = {True: "yes", False: "NO", None: "-"}[t["met"]]
        verdict.add_row(t["target"], t["bound"], _fmt(t["ratio"], 2), met)
    console.print(verdict)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


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
    bounds = {t.key: ("≥ " if t.higher_is_better else "≤ ") + f"{t.bound:g}×" for t in TARGETS}
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
    return "\n".join(lines) + "\n"


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path, md_path = out / "compare.json", out / "compare.png", out / "compare.md"
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    chart(doc, png_path)
    md_path.write_text(markdown(doc))
    return [json_path, png_path, md_path]


# -- command line ----------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser, levels: Callable[[str], tuple[int, ...]]) -> None:
    d = CompareSettings()
    p.add_argument("--rounds", type=int, default=d.rounds, help="interleaved rounds (default 3)")
    p.add_argument(
        "--concurrency",
        type=levels,
        default=d.concurrency,
        help="closed-loop levels (default 1,4,16,64): 8 requests at 1, 3×N at N",
    )
    p.add_argument(
        "--open-requests", type=int, default=d.open_requests, help="open-loop requests (48)"
    )
    p.add_argument(
        "--load",
        type=float,
        default=d.load,
        help="open-loop rate as a share of llama-server's capacity (default 0.75)",
    )
    p.add_argument("--rate", type=float, help="a fixed open-loop rate (requests/s) instead")
    p.add_argument("--prompt-tokens", type=int, default=d.prompt_tokens, help="(default 128)")
    p.add_argument("--max-tokens", type=int, default=d.max_tokens, help="(default 128)")
    p.add_argument("--model", help="a GGUF file (default: the embedded Gemma 3 270M)")
    p.add_argument("--threads", type=int, default=0, help="both servers (default: CPU count)")
    p.add_argument("--slots", type=int, default=d.slots, help="sequences at once (default 64)")
    p.add_argument(
        "--out", type=Path, default=d.out, help="folder for compare.json, compare.png, logs"
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=d.cache,
        help="where the built llama-server is kept (default: the user cache, or TETHER_CACHE_DIR)",
    )
    p.add_argument("--llama-server", type=Path, help="use this llama-server binary; build none")


def run_command(args: argparse.Namespace) -> None:
    if args.rounds < 1 or args.open_requests < 1 or not 0 < args.load <= 2:
        raise ClientError("--rounds and --open-requests must be positive, --load in (0, 2]")
    settings = CompareSettings(
        rounds=args.rounds,
        concurrency=args.concurrency,
        open_requests=args.open_requests,
        load=args.load,
        rate=args.rate,
        prompt_tokens=args.prompt_tokens,
        max_tokens=args.max_tokens,
        model=args.model,
        threads=args.threads,
        slots=max(args.slots, max(args.concurrency)),
        out=args.out,
        cache=args.cache,
        llama_server_binary=args.llama_server,
    )
    doc = compare(settings)
    print_summary(doc)
    for path in write(doc, settings.out):
        print(f"wrote {path}")
