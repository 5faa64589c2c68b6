"""Soak a real ``tether serve`` with refused and completed requests; print its memory.

    python -m tether.bench.soak          # 10,000 refused, then 1,000 completed (make soak)
    python -m tether.bench.soak --refused 500 --completed 50

It starts its own server (4 sequences, a queue as deep as ``--concurrency``) on a free
loopback port and fills every sequence and the queue with long requests. Then it sends
``--refused`` requests with ``n = 4`` and a JSON grammar, each answered 503; lets the long
requests go; and sends ``--completed`` requests with ``n = 4`` and a regex grammar that run
to the end, ``--concurrency`` at a time. It prints the server's RSS (from /proc) and its
``tether:live_samplers`` gauge before and after each phase. A leak of llama.cpp samplers,
the issue-9 bug, grew RSS from 594 to 894 MB over 3,000 refused requests; without one, both
numbers stay flat.
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
    log: Path, threads: int, queue: int
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A ``tether serve`` with 4 sequences and a queue of ``queue``, stopped on exit."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tether", "serve", "--port", str(port)]
    command += ["--max-seqs", "4", "--max-queue", str(queue), "--ctx-size", "2048"]
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
    remaining = count
    matched = 0

    async def worker() -> None:
        nonlocal remaining, matched
        while remaining > 0:
            remaining -= 1
            response = await http.post("/v1/chat/completions", json=body)
            matched += response.status_code == want

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return matched


async def _wait_idle(http: httpx.AsyncClient, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = (await http.get("/metrics")).text
        busy = re.findall(r"^tether:num_requests_(?:running|waiting)\{[^}]*\} (\S+)$", text, re.M)
        if busy and not any(float(value) for value in busy):
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


def main(argv: list[str] | None = None) -> None:
    summary = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m tether.bench.soak", description=summary)
    p.add_argument("--refused", type=int, default=10_000, help="requests answered 503")
    p.add_argument("--completed", type=int, default=1_000, help="requests run to the end")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--threads", type=int, default=0, help="llama.cpp threads (default: all)")
    p.add_argument("--log", type=Path, default=Path("soak-serve.log"), help="server log file")
    args = p.parse_args(argv)
    # A queue as deep as the concurrency: the completed phase never gets a 503.
    with tether_server(args.log, args.threads, args.concurrency) as (proc, url):
        print(f"before:                              {reading(proc.pid, url)}", flush=True)
        asyncio.run(soak(url, proc.pid, args.refused, args.completed, args.concurrency))


if __name__ == "__main__":
    main()
