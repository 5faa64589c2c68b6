"""``tether bench compare``: the summary and verdict over interleaved rounds, the server
launch, and the decode-step counters a real Tether exposes for the per-token overhead."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from rich.progress import Progress

from tests.conftest import RunningServer
from tether.bench import llama_server
from tether.bench.compare.output import print_summary, write
from tether.bench.compare.overhead import decode_timing
from tether.bench.compare.rounds import ServerRun
from tether.bench.compare.servers import free_port, running, tether_argv
from tether.bench.compare.settings import LLAMA, TETHER, CompareSettings
from tether.bench.compare.summary import summarize
from tether.client.api import ClientError


def result(mode: str, level: int, tps: float, ttft: float, itl: float) -> dict[str, Any]:
    dist = {"mean": ttft, "p50": ttft, "p90": ttft, "p99": 2 * ttft}
    return {
        "mode": mode,
        "rate": 1.5 if mode == "open" else None,
        "concurrency": level,
        "output_tokens_per_s": tps,
        "requests_per_s": tps / 128,
        "ttft_ms": dist,
        "itl_ms": {"mean": itl, "p50": itl, "p90": itl, "p99": 3 * itl},
    }


def run(name: str, round_: int, speed: float) -> dict[str, Any]:
    """A server run whose every number scales with ``speed`` (latencies inversely)."""
    results = [result("closed", c, speed * 10 * c, 100 / speed, 10 / speed) for c in (1, 16, 64)]
    results.append(result("open", 6, speed * 100, 200 / speed, 20 / speed))
    out: dict[str, Any] = {"name": name, "round": round_, "results": results}
    if name == TETHER:
        out["overhead"] = {
            "itl_mean_ms": 12.2,
            "step_mean_ms": 12.0,
            "kernel_mean_ms": 11.5,
            "python_in_step_ms": 0.5,
            "overhead_ms": 0.2 + round_ / 100,
        }
    return out


def test_the_summary_is_the_median_of_interleaved_rounds() -> None:
    # Tether is 1.2, 1.0 and 2.0 times as fast in the three rounds: the median ratio is 1.2
    # whatever the absolute numbers did between rounds.
    runs = [
        run(LLAMA, 1, 1.0), run(TETHER, 1, 1.2),
        run(LLAMA, 2, 2.0), run(TETHER, 2, 2.0),
        run(LLAMA, 3, 1.0), run(TETHER, 3, 2.0),
    ]  # fmt: skip
    summary = summarize(runs)
    tps = summary["metrics"]["closed_16_tps"]
    assert tps["ratios"] == [1.2, 1.0, 2.0]
    assert tps["ratio"] == 1.2
    assert (tps[LLAMA], tps[TETHER]) == (160.0, 320.0)
    ttft = summary["metrics"]["open_ttft_p50"]
    assert ttft["ratio"] == pytest.approx(1 / 1.2, abs=1e-3)
    verdict = {t["target"]: t["met"] for t in summary["targets"]}
    assert verdict["closed loop, 16 streams: output tokens/s"] is True  # 1.2 ≥ 1.10
    assert verdict["closed loop, 64 streams: output tokens/s"] is True  # 1.2 ≥ 1.15
    assert verdict["open loop: time to first token p50"] is False  # 0.83 > 0.4
    assert summary["overhead"]["overhead_ms"] == pytest.approx(0.22)
    assert verdict["per-token server overhead at 1 stream (ms)"] is True


def test_the_summary_prints_and_charts(tmp_path: Path) -> None:
    runs = [run(LLAMA, 1, 1.0), run(TETHER, 1, 1.1)]
    doc = {
        "settings": {
            "rounds": 1,
            "concurrency": [1, 16, 64],
            "open_rate": 1.5,
            "prompt_tokens": 128,
            "max_tokens": 128,
            "threads": 2,
        },
        "machine": {"cpu": "test cpu"},
        "runs": runs,
        "summary": summarize(runs),
    }
    console = Console(record=True, width=200)
    print_summary(doc, console)
    text = console.export_text()
    assert "closed loop, 16 streams: output tokens/s" in text
    assert "open loop at 1.5 req/s: inter-token latency p99, ms" in text
    assert "server overhead 0.21 ms" in text
    paths = write(doc, tmp_path)
    assert [p.name for p in paths] == ["compare.json", "compare.png", "compare.md"]
    assert paths[1].read_bytes().startswith(b"\x89PNG")
    table = paths[2].read_text()
    row = "| closed loop, 16 streams: output tokens/s | 160.0 | 176.0 | 1.10 (1.10) | ≥ 1.1× |"
    assert row in table


def test_llama_server_is_configured_as_tether_is() -> None:
    argv = llama_server.command(
        Path("/bin/llama-server"), "m.gguf", 9000, threads=2, slots=64, ctx_per_slot=4096, batch=512
    )
    flags = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert flags["--model"] == "m.gguf"
    assert (flags["--threads"], flags["--parallel"], flags["--ctx-size"]) == ("2", "64", "262144")
    assert flags["--batch-size"] == flags["--ubatch-size"] == "512"
    assert "--no-repack" in argv  # as Tether loads: use_extra_bufts = False
    tether = tether_argv(CompareSettings(threads=2), "m.gguf", 9001)
    assert tether[tether.index("--max-seqs") + 1] == "64"
    assert tether[tether.index("--ctx-size") + 1] == "4096"


def test_a_server_that_dies_at_startup_is_reported_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('no such model'); raise SystemExit(3)"]
    with (
        pytest.raises(ClientError, match="exited with 3:\nno such model"),
        running("llama-server", argv, free_port(), tmp_path / "log"),
    ):
        pass


@pytest.mark.e2e
def test_tether_counts_its_decode_steps(tether_server: RunningServer) -> None:
    before = decode_timing(tether_server.url)
    body = {"model": tether_server.model, "prompt": "Once upon a", "max_tokens": 8, "ignore_eos": 1}
    assert httpx.post(f"{tether_server.v1}/completions", json=body, timeout=60).status_code == 200
    after = decode_timing(tether_server.url)
    steps = after["steps"] - before["steps"]
    assert steps >= 7  # the first token comes from the prompt's step, the others each decode
    step_s = after["step_s"] - before["step_s"]
    kernel_s = after["kernel_s"] - before["kernel_s"]
    assert 0 < kernel_s < step_s


@pytest.mark.e2e
def test_the_overhead_at_one_stream_splits_what_a_client_sees(
    tether_server: RunningServer,
) -> None:
    # The 1-stream level as bench compare runs it: 8 streamed requests, the counters around.
    settings = CompareSettings(prompt_tokens=16, max_tokens=16, concurrency=(1,))
    with Progress(disable=True) as bar:
        run = ServerRun(settings, TETHER, tether_server.url, bar)
        result = run.closed(1, time_decode=True)
    o = run.overhead
    assert o is not None and result["completed"] == 8
    # Every output token but each request's first comes from a decode step, one a step or,
    # with drafts accepted (speculative decoding), several.
    assert o["decode_steps"] * o["tokens_per_step"] >= 8 * 15
    assert o["itl_mean_ms"] == pytest.approx(result["itl_ms"]["mean"], abs=1e-3)
    # The client's gap between tokens holds one engine step, which holds one llama_decode:
    # the overhead is what the server adds around the step, never less than nothing (a 5%
    # allowance for the two clocks' jitter), and the step is most of the gap.
    assert 0 < o["kernel_mean_ms"] <= o["step_mean_ms"]
    assert o["overhead_ms"] >= -0.05 * o["itl_mean_ms"]
    assert o["step_mean_ms"] > 0.5 * o["itl_mean_ms"]
