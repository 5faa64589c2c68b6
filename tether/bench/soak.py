"""Soak a real ``tether serve`` with refused and completed requests; print its memory.

    python -m tether.bench.soak          # 10,000 refused, 1,000 completed, 3 rounds (make soak)
    python -m tether.bench.soak --refused 500 --completed 50 --rounds 10
    python -m tether.bench.soak --refused 0 --completed 0 --rounds 10   # the rounds alone

It starts its own server (4 sequences, a queue as deep as ``--concurrency``) on a free
loopback port and fills every sequence and the queue with long requests. Then it sends
``--refused`` requests with ``n = 4`` and a JSON grammar, each answered 503; lets the long
requests go; and sends ``--completed`` requests with ``n = 4`` and a regex grammar that run
to the end, ``--concurrency`` at a time. It prints the server's RSS (from /proc) and its
``tether:live_samplers`` gauge before and after each phase. A leak of llama.cpp samplers,
the issue-9 bug, grew RSS from 594 to 894 MB over 3,000 refused requests; without one, both
numbers stay flat.

Then the refusal rounds (issue 22), on a second server of 8 sequences and a queue of one:
8 streamed requests of 400 tokens (``ignore_eos``, each sent again when it ends) hold every
sequence, and each of ``--rounds`` rounds sends ``--round-requests`` requests with
``n = 4`` and ``json_object``, 16 in flight. Nearly all are answered 503; the few that take
the queue's one place run their grammars. It prints RSS after each round and its growth
over all of them: before the engine trimmed its C heap after grammars, rounds of 3,000 grew
it by +60, +0 and +108 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tether.client.health import NotHealthy, wait_healthy

MODEL = "google/gemma-3-270m"
_SAMPLERS = re.compile(r"^tether:live_samplers\{[^}]*\} (\S+)$", re.MULTILINE)
STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Reading:
    """The server's resident memory and live sampler count at one moment."""

    rss_mb: float
    live_samplers: int

    def __str__(self) -> str:
        return f"RSS {self.rss_mb:7.1f} MB, live samplers {self.live_samplers}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def tether_server(
    log: Path, threads: int, queue: int, seqs: int = 4
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A ``tether serve`` with ``seqs`` sequences and a queue of ``queue``, stopped on exit."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tether", "serve", "--port", str(port)]
    command += ["--max-seqs", str(seqs), "--max-queue", str(queue), "--ctx-size", "2048"]
    command += ["--threads", str(threads), "--drain-timeout", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    try:
        wait_healthy(proc, url, STARTUP_TIMEOUT_S)
        yield proc, url
    except NotHealthy as exc:
        raise SystemExit(f"tether serve {exc}") from exc
    finally:
        proc.terminate()
        proc.wait(60)


def reading(pid: int, url: str) -> Reading:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]
    match = _SAMPLERS.search(httpx.get(f"{url}/metrics", timeout=10).text)
    return Reading(rss_kb / 1024, int(float(match.group(1))) if match else -1)


def grammar_body(max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Describe a cat in JSON."}],
        "n": 4,
        "max_tokens": max_tokens,
        "response_format": {"type": "json_object"},
        **extra,
    }


# Completed requests: a grammar the model satisfies in a token or two. Each still builds and
# frees 4 sampler chains and 4 grammars; a JSON object would spend a second per request in
# grammar-constrained sampling without exercising anything more.
YES_NO = {"type": "regex", "pattern": "(yes|no)"}


async def _hold(http: httpx.AsyncClient, started: asyncio.Event) -> None:
    """One long streamed request: holds its slots until cancelled."""
    body = grammar_body(1900, ignore_eos=True, stream=True, response_format=None)
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        async for _ in response.aiter_raw():
            started.set()


async def _send_all(
    http: httpx.AsyncClient, count: int, concurrency: int, body: dict[str, Any], want: int
) -> int:
    """Send ``count`` requests; return how many got status ``want``."""
    return (await _send_counting(http, count, concurrency, body))[want]


async def _send_counting(
    http: httpx.AsyncClient, count: int, concurrency: int, body: dict[str, Any]
) -> Counter[int]:
    """Send ``count`` requests, ``concurrency`` at a time; count their statuses."""
    remaining = count
    statuses: Counter[int] = Counter()

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            response = await http.post("/v1/chat/completions", json=body)
            statuses[response.status_code] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def _gauges(text: str, name: str) -> list[float]:
    return [float(v) for v in re.findall(rf"^tether:{name}\{{[^}}]*\}} (\S+)$", text, re.M)]


async def _wait_running(http: httpx.AsyncClient, count: int, timeout_s: float = 300.0) -> None:
    """Wait until ``count`` sequences are running and sampling (the holders get in one at a
    time: the queue has one place)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = (await http.get("/metrics")).text
        running = sum(_gauges(text, "num_requests_running"))
        if min(running, sum(_gauges(text, "live_samplers"))) >= count:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"{count} requests were not running after {timeout_s:g} s")


async def _wait_idle(http: httpx.AsyncClient, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = (await http.get("/metrics")).text
        busy = _gauges(text, "num_requests_running") + _gauges(text, "num_requests_waiting")
        if busy and not any(busy):
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the server did not become idle")


async def soak(url: str, pid: int, refused: int, completed: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=2 * concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        warm = await _send_all(http, 8, 4, grammar_body(4, response_format=YES_NO), 200)
        print(f"after warm-up ({warm}/8 completed):     {reading(pid, url)}", flush=True)

        # One holder takes the 4 sequences (n = 4); the others fill the queue.
        started = asyncio.Event()
        holders = [asyncio.ensure_future(_hold(http, started)) for _ in range(concurrency + 1)]
        await asyncio.wait_for(started.wait(), 60)
        await asyncio.sleep(1.0)
        print(f"all sequences busy, queue full:      {reading(pid, url)}", flush=True)
        began = time.monotonic()
        got = await _send_all(http, refused, concurrency, grammar_body(8), 503)
        took = time.monotonic() - began
        print(f"after {refused} refused ({got} were 503, {took:.0f} s): {reading(pid, url)}")
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        await _wait_idle(http)  # the server sees the disconnects and aborts them

        began = time.monotonic()
        body = grammar_body(4, response_format=YES_NO)
        got = await _send_all(http, completed, concurrency, body, 200)
        took = time.monotonic() - began
        print(f"after {completed} completed ({got} were 200, {took:.0f} s): {reading(pid, url)}")


# The refusal rounds' shape (issue 22).
ROUND_SEQS = 8
ROUND_CONCURRENCY = 16
HOLDER_TOKENS = 400


async def _hold_again_and_again(
    http: httpx.AsyncClient, started: asyncio.Event, tokens: int
) -> None:
    """One sequence held by a streamed request of ``tokens`` tokens, sent again each time it
    ends, until cancelled; a 503 (the queue's one place was taken) is retried."""
    body = grammar_body(tokens, n=1, ignore_eos=True, stream=True, response_format=None)
    while True:
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            async for _ in response.aiter_raw():
                if response.status_code == 200:
                    started.set()
        if response.status_code != 200:
            await asyncio.sleep(0.2)


async def refusal_rounds(
    url: str, pid: int, rounds: int, per_round: int, hold_tokens: int = HOLDER_TOKENS
) -> None:
    limits = httpx.Limits(max_connections=ROUND_SEQS + ROUND_CONCURRENCY + 4)
    # A request that takes the queue's place waits for 4 holders to end: minutes on 2 cores.
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as http:
        started = asyncio.Event()
        holders = [
            asyncio.ensure_future(_hold_again_and_again(http, started, hold_tokens))
            for _ in range(ROUND_SEQS)
        ]
        try:
            await asyncio.wait_for(started.wait(), 120)
            await _wait_running(http, ROUND_SEQS)
            first = last = reading(pid, url)
            held = f"{ROUND_SEQS} sequences held, a queue of 1:"
            print(f"{held:<37}{first}", flush=True)
            body = grammar_body(8)
            for number in range(1, rounds + 1):
                began = time.monotonic()
                statuses = await _send_counting(http, per_round, ROUND_CONCURRENCY, body)
                took = time.monotonic() - began
                now = reading(pid, url)
                answers = ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
                print(
                    f"round {number} of {per_round} ({answers}, {took:.0f} s): {now}, "
                    f"{now.rss_mb - last.rss_mb:+.1f} MB",
                    flush=True,
                )
                last = now
            print(f"over {rounds} rounds: RSS {last.rss_mb - first.rss_mb:+.1f} MB", flush=True)
        finally:
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)


def main(argv: list[str] | None = None) -> None:
    summary = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m tether.bench.soak", description=summary)
    p.add_argument("--refused", type=int, default=10_000, help="requests answered 503")
    p.add_argument("--completed", type=int, default=1_000, help="requests run to the end")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument(
        "--rounds", type=int, default=3, help="refusal rounds on the second server (0: none)"
    )
    p.add_argument("--round-requests", type=int, default=3_000, help="requests per refusal round")
    p.add_argument(
        "--hold-tokens",
        type=int,
        default=HOLDER_TOKENS,
        help=f"tokens of each request holding a sequence in the rounds (default {HOLDER_TOKENS})",
    )
    p.add_argument("--threads", type=int, default=0, help="llama.cpp threads (default: all)")
    p.add_argument(
        "--log",
        type=Path,
        default=Path("soak-serve.log"),
        help="server log file (the rounds' server: its name with -rounds)",
    )
    args = p.parse_args(argv)
    if args.refused or args.completed:
        # A queue as deep as the concurrency: the completed phase never gets a 503.
        with tether_server(args.log, args.threads, args.concurrency) as (proc, url):
            print(f"before:                              {reading(proc.pid, url)}", flush=True)
            asyncio.run(soak(url, proc.pid, args.refused, args.completed, args.concurrency))
    if args.rounds:
        log = args.log.with_name(f"{args.log.stem}-rounds{args.log.suffix}")
        with tether_server(log, args.threads, queue=1, seqs=ROUND_SEQS) as (proc, url):
            print(f"before the rounds:                   {reading(proc.pid, url)}", flush=True)
            rounds = refusal_rounds(
                url, proc.pid, args.rounds, args.round_requests, args.hold_tokens
            )
            asyncio.run(rounds)


if __name__ == "__main__":
    main()
