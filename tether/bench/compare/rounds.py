"""The rounds of a comparison: both servers started afresh each round, every load run on one
and then on the other, and the result document that gathers them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tether.bench import llama_server, report
from tether.bench.compare.overhead import decode_timing, overhead
from tether.bench.compare.quoting import LLAMA_SPEC, TETHER_OFF, run_quoting, summarize_quoting
from tether.bench.compare.servers import free_port, llama_argv, running, tether_argv
from tether.bench.compare.settings import LLAMA, TETHER, CompareSettings
from tether.bench.compare.summary import summarize
from tether.bench.load import BenchSettings, sweep
from tether.bench.report import slug
from tether.bench.response_format import llama_server_fields


class ServerRun:
    """The loads of one server process in one round, in order, with prompts that never
    repeat. The first load calibrates the prompt length; the others reuse it."""

    def __init__(self, s: CompareSettings, name: str, url: str, bar: Any) -> None:
        self.s, self.name, self.url, self.bar = s, name, url, bar
        self.next_prompt = 1
        self.calibration: dict[str, Any] | None = None
        self.results: list[dict[str, Any]] = []
        self.model = ""
        self.overhead: dict[str, Any] | None = None
        # llama-server's /v1/completions ignores response_format: it gets its own field too.
        self.extra_body = llama_server_fields(s.response_format) if name == LLAMA else {}

    def _sweep(self, **fields: Any) -> dict[str, Any]:
        """One load (one level); its result."""
        settings = BenchSettings(
            url=self.url,
            prompt_tokens=self.s.prompt_tokens,
            max_tokens=self.s.max_tokens,
            duration_s=3600,
            name=self.name,
            response_format=self.s.response_format,
            extra_body=self.extra_body,
            **fields,
        )
        measured = asyncio.run(
            sweep(settings, self.bar, first_prompt=self.next_prompt, calibration=self.calibration)
        )
        self.next_prompt = measured["next_prompt"]
        self.calibration = measured["prompt"]
        self.model = measured["model"]
        self.results.extend(measured["results"])
        result: dict[str, Any] = measured["results"][0]
        return result

    def closed(self, concurrency: int, time_decode: bool = False) -> dict[str, Any]:
        """A closed loop at ``concurrency``; with ``time_decode``, Tether's decode-step
        counters around it give ``self.overhead``."""
        before = decode_timing(self.url) if time_decode else None
        result = self._sweep(
            concurrency=(concurrency,), requests=self.s.closed_requests(concurrency)
        )
        if before is not None:
            self.overhead = overhead(before, decode_timing(self.url), result["itl_ms"]["mean"])
        return result

    def open(self, rate: float) -> dict[str, Any]:
        return self._sweep(rates=(rate,), requests=self.s.open_requests)

    def record(self, round_: int) -> dict[str, Any]:
        """This run as the result document lists it."""
        out = {
            "name": self.name,
            "round": round_,
            "model": self.model,
            "prompt": self.calibration,
            "results": self.results,
        }
        return out if self.overhead is None else {**out, "overhead": self.overhead}


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
    levels: list[int | None] = [*s.concurrency, None]  # None: the open loop
    for i, level in enumerate(levels):
        order = [LLAMA, TETHER] if (round_ + i) % 2 else [TETHER, LLAMA]
        for name in order:
            if level is None:
                runs[name].open(rate(runs))
            else:
                runs[name].closed(level, time_decode=name == TETHER and level == 1)
    return [run.record(round_) for run in runs.values()]


def capacity(results: list[dict[str, Any]]) -> float:
    """A server's capacity: its best closed-loop requests/s."""
    return max(float(r["requests_per_s"]) for r in results if r["mode"] == "closed")


def compare(s: CompareSettings, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every round on fresh processes; the result document (``compare.json``)."""
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
        for r in range(1, s.rounds + 1 if "random" in s.workloads else 1):
            ports = {LLAMA: free_port(), TETHER: free_port()}
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
    quoting = _quoting(s, binary, model, say) if "quoting" in s.workloads else None
    return {
        "schema": 1,
        "kind": "compare",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "build": _build(binary),
        "settings": _settings(s, model, rate or 0.0),
        "runs": runs,
        "summary": summarize(runs),
        **({"quoting": quoting} if quoting is not None else {}),
    }


def _quoting(s: CompareSettings, binary: Path, model: str, say: Callable[[str], None]) -> Any:
    """The quoting workload's rounds: four servers afresh each round (``quoting``)."""
    logs = s.out / "logs"
    names = [LLAMA, LLAMA_SPEC, TETHER_OFF, TETHER]
    runs: list[dict[str, Any]] = []
    commands: dict[str, str] = {}
    for r in range(1, s.rounds + 1):
        say(f"quoting workload, round {r} of {s.rounds}")
        ports = {name: free_port() for name in names}
        argvs = {
            LLAMA: llama_argv(s, binary, model, ports[LLAMA]),
            LLAMA_SPEC: [*llama_argv(s, binary, model, ports[LLAMA_SPEC]), "--spec-default"],
            TETHER_OFF: [*tether_argv(s, model, ports[TETHER_OFF]), "--speculative", "off"],
            TETHER: tether_argv(s, model, ports[TETHER]),
        }
        commands = {name: " ".join(argv) for name, argv in argvs.items()}
        with contextlib.ExitStack() as stack:
            urls = {
                name: stack.enter_context(
                    running(name, argvs[name], ports[name], logs / f"quoting-{slug(name)}-{r}.log")
                )
                for name in names
            }
            models = {name: _first_model(url) for name, url in urls.items()}
            runs.extend(run_quoting(urls, models.__getitem__, r, s.quoting_requests))
    return {"runs": runs, "commands": commands, "summary": summarize_quoting(runs, names)}


def _first_model(url: str) -> str:
    import httpx

    from tether.client.api import model_cards

    cards = model_cards(httpx.get(f"{url}/v1/models", timeout=10).json()) or [{}]
    return str(cards[0].get("id", ""))


def _build(binary: Path) -> dict[str, Any]:
    from tether.engines.llamacpp.runner import system_info

    flags = binary.parent / "cmake-flags.txt"
    return {
        "llama_cpp_python": llama_server.version(),
        "llama_server_cmake_flags": flags.read_text().split() if flags.is_file() else None,
        "tether_system_info": system_info(),
    }


def _settings(s: CompareSettings, model: str, rate: float) -> dict[str, Any]:
    return {
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
        "response_format": s.response_format,
    }


def _embedded_model() -> str:
    from tether.engines.llamacpp.gguf import resolve_model_path

    return resolve_model_path(None)
