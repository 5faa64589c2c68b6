"""The flags of ``tether bench compare`` and what they run (``bench/cli.py`` mounts them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from tether.bench import response_format
from tether.bench.compare.output import print_summary, write
from tether.bench.compare.rounds import compare
from tether.bench.compare.settings import WORKLOADS, CompareSettings
from tether.client.api import ClientError


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
    p.add_argument(
        "--workloads",
        type=_workloads,
        default=d.workloads,
        help="random (prompts cut from one text, every --concurrency level) and/or quoting "
        "(one stream whose answer quotes a 600-token report; llama-server also with "
        "--spec-default, Tether also with --speculative off) (default random,quoting)",
    )
    p.add_argument(
        "--quoting-requests",
        type=int,
        default=d.quoting_requests,
        help="quoting answers per server and round (default 3)",
    )
    p.add_argument(
        "--response-format",
        type=response_format.read,
        metavar="FILE",
        help="a JSON file holding an OpenAI response_format object: every request of both "
        "servers is constrained by it (llama-server gets it as its json_schema field)",
    )


def _workloads(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))
    unknown = [w for w in names if w not in WORKLOADS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"workloads are {', '.join(WORKLOADS)}, got {text!r}")
    return names


def run_command(args: argparse.Namespace) -> None:
    if args.rounds < 1 or args.open_requests < 1 or not 0 < args.load <= 2:
        raise ClientError("--rounds and --open-requests must be positive, --load in (0, 2]")
    try:
        response_format.llama_server_fields(args.response_format)
    except ValueError as exc:
        raise ClientError(str(exc)) from exc
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
        response_format=args.response_format,
        workloads=args.workloads,
        quoting_requests=max(1, args.quoting_requests),
    )
    doc = compare(settings)
    print_summary(doc)
    for path in write(doc, settings.out):
        print(f"wrote {path}")
