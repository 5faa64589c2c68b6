"""Several models in one server (issue 20), measured on real ``tether serve`` processes.

    tether bench models                           # 5 rounds of each measurement
    tether bench models --rounds 3 --streams 8 --threads 2
    (also python -m tether.bench.models)

Every model is a copy of the embedded one under another name (the same weights, so the
numbers compare the server, not the models). Three measurements:

1. Time to first token for a model that is not loaded (stopped through the endpoints
   API before each request) against the same model already loaded, and the load time the
   server reports (``tether:model_load_seconds``).
2. Output tokens/s of ``--streams`` streams (64 tokens each, ``ignore_eos``, closed loop)
   on one model, against the same streams split over two models served at once (one decode
   thread steps both, each on its own context), in interleaved rounds.
3. The server's resident memory with five models configured and none loaded, with one
   loaded, and a one-model server's, for comparison: nothing is resident for a model that
   is not loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tether.bench.soak import _free_port
from tether.client.health import NotHealthy, wait_healthy

STARTUP_TIMEOUT_S = 120.0
PROMPT = "Write a short story about a lighthouse keeper and a storm."


@contextmanager
def server(log: Path, *args: str, threads: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tether", "serve", "--port", str(port)]
    command += ["--threads", str(threads), "--drain-timeout", "0", "--state-db", ":memory:"]
    command += list(args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    try:
        wait_healthy(proc, url, STARTUP_TIMEOUT_S)
        yield proc, url
    except NotHealthy as exc:
        raise SystemExit(f"tether serve {exc}: see {log}") from exc
    finally:
        proc.terminate()
        proc.wait(60)


async def first_token_s(http: httpx.AsyncClient, url: str, model: str) -> float:
    """Seconds from sending a streamed completion to its first text."""
    body = {"model": model, "prompt": PROMPT, "max_tokens": 4, "temperature": 0, "stream": True}
    started = time.perf_counter()
    first = None
    async with http.stream("POST", f"{url}/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: {"):
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("no token came")
    return first


async def stream_tokens(http: httpx.AsyncClient, url: str, model: str, tokens: int) -> int:
    body = {
        "model": model,
        "prompt": PROMPT,
        "max_tokens": tokens,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
    }
    count = 0
    async with http.stream("POST", f"{url}/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"text":""' not in line.replace(" ", ""):
                count += 1
    return count


def metric_sum(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}\{{[^}}]*\}} (\S+)$", text, re.M))


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else 0.0


async def stop(http: httpx.AsyncClient, url: str, model: str) -> None:
    """Unload ``model`` through the endpoints API and wait until it is."""
    await http.patch(f"{url}/v1/endpoints/{model}", json={"state": "STOPPED"})
    while (await http.get(f"{url}/v1/endpoints/{model}")).json()["state"] != "STOPPED":
        await asyncio.sleep(0.05)


async def cold_and_warm(url: str, rounds: int) -> None:
    async with httpx.AsyncClient(timeout=300) as http:
        await first_token_s(http, url, "a")
        cold = []
        for _ in range(2 * rounds):
            await asyncio.sleep(2.0)  # its llguidance vocabulary read (~1.3 s) is over
            await stop(http, url, "a")
            cold.append(await first_token_s(http, url, "a"))
        warm = [await first_token_s(http, url, "a") for _ in range(2 * rounds)]
        metrics = (await http.get(f"{url}/metrics")).text
    loads = metric_sum(metrics, "tether:model_load_seconds_count")
    load_s = metric_sum(metrics, "tether:model_load_seconds_sum") / max(loads, 1)
    print(f"  first token, model not loaded: median {statistics.median(cold) * 1000:7.0f} ms")
    print(f"  first token, model loaded:     median {statistics.median(warm) * 1000:7.0f} ms")
    print(f"  load time the server reports:  mean   {load_s * 1000:7.0f} ms over {loads:.0f}")


async def throughput(url: str, models: list[str], streams: int, tokens: int) -> float:
    async with httpx.AsyncClient(timeout=600) as http:
        started = time.perf_counter()
        counts = await asyncio.gather(
            *(stream_tokens(http, url, models[i % len(models)], tokens) for i in range(streams))
        )
        return sum(counts) / (time.perf_counter() - started)


async def one_and_two(url: str, rounds: int, streams: int) -> None:
    async with httpx.AsyncClient(timeout=300) as http:
        for model in ("a", "b"):  # both loaded before anything is timed
            await first_token_s(http, url, model)
    one: list[float] = []
    two: list[float] = []
    for round_ in range(rounds):
        order = (("one", ["a"]), ("two", ["a", "b"]))
        for name, models in order if round_ % 2 == 0 else order[::-1]:
            rate = await throughput(url, models, streams, 64)
            (one if name == "one" else two).append(rate)
    print(f"  {streams} streams on one model:       median {statistics.median(one):6.1f} tokens/s")
    print(f"  {streams} streams over two models:    median {statistics.median(two):6.1f} tokens/s")
    print(f"  ratio two / one: {statistics.median(two) / statistics.median(one):.2f}")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each measurement")
    parser.add_argument("--streams", type=int, default=8, help="streams of the throughput runs")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: all)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tether.bench.models",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> None:
    """``tether bench models``."""
    from tether.engines.llamacpp.gguf import default_model_path

    threads = args.threads or (os.cpu_count() or 2)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, llama.cpp threads {threads}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        copies = []
        for name in "abcde":
            copies.append(root / f"{name}.gguf")
            shutil.copyfile(default_model_path(), copies[-1])
        small = ["--max-seqs", str(max(args.streams, 4)), "--ctx-size", "1024"]
        named = [
            arg
            for name, path in zip("ab", copies, strict=False)
            for arg in ("--model", f"{name}={path}")
        ]

        print("1. a request for a model that is not loaded")
        with server(
            root / "cold.log", *small, *named, "--max-loaded-models", "1", threads=threads
        ) as (_, url):
            asyncio.run(cold_and_warm(url, args.rounds))

        print("2. two models served at once")
        with server(root / "two.log", *small, *named, threads=threads) as (_, url):
            asyncio.run(one_and_two(url, args.rounds, args.streams))

        print("3. resident memory")
        five = [
            arg
            for name, path in zip("abcde", copies, strict=True)
            for arg in ("--model", f"{name}={path}")
        ]
        with server(root / "five.log", *small, *five, threads=threads) as (proc, url):
            idle = rss_mb(proc.pid)
            asyncio.run(first_token_s(httpx.AsyncClient(timeout=300), url, "a"))
            loaded = rss_mb(proc.pid)
        with server(root / "one.log", *small, "--model", str(copies[0]), threads=threads) as (
            proc,
            url,
        ):
            asyncio.run(first_token_s(httpx.AsyncClient(timeout=300), url, "google/gemma-3-270m"))
            single = rss_mb(proc.pid)
        print(f"  five models configured, none loaded: {idle:7.1f} MB")
        print(f"  five models configured, one loaded:  {loaded:7.1f} MB")
        print(f"  one model, the pre-pool way:         {single:7.1f} MB")


if __name__ == "__main__":
    main()
