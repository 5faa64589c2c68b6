"""Engine benchmark: Tether's engine next to raw ``llama_decode`` on the same batches.

    python -m tether.bench.engine [--concurrency 1,4,16,64] [--prompt-tokens 128] [--gen-tokens 128]

Prints single-stream decode tokens/s, prefill tokens/s, and steady-state aggregate decode
tokens/s at each concurrency, each beside the ceiling measured in the same run: the same
batches driven straight through ``llama_decode`` with no scheduler, detokenizer or sampling.

One more raw line shows where batched decode time goes: the largest batch again, with
logits asked for one row only, so llama.cpp skips the 262,144-row vocabulary projection for
the other sequences (what prefill does for every prompt token but the last). A server
can't skip it: every decoded token is sampled from its row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tether.engine.config import EngineConfig
from tether.engine.request import GenerationRequest
from tether.engine.sampling_params import SamplingParams
from tether.engines.llamacpp.async_engine import AsyncEngine
from tether.engines.llamacpp.gguf import resolve_model_path
from tether.engines.llamacpp.runner import ModelRunner, RunnerConfig

TEXT = (
    "The history of computing is a story of people who wanted to calculate faster than "
    "their hands allowed. Early machines used gears and levers; later ones used relays, "
    "vacuum tubes and finally transistors etched by the billion onto slivers of silicon. "
)


@dataclass
class Row:
    name: str
    engine: float | None  # None: a raw-only measure
    raw: float

    @property
    def ratio(self) -> float | None:
        return self.engine / self.raw if self.engine is not None and self.raw else None


def prompts(runner: ModelRunner, count: int, length: int, salt: int) -> list[list[int]]:
    """``count`` prompts of exactly ``length`` tokens, distinct from their second token on
    and across salts, so no run can reuse another's prefix."""
    body = runner.vocab.tokenize(TEXT * (2 + length // 20), add_special=False)
    bos = runner.vocab.tokenize("", add_special=True)
    return [
        [*bos, 1000 + 256 * salt + i, *body[i : i + length - len(bos) - 1]] for i in range(count)
    ]


# -- raw llama.cpp ---------------------------------------------------------------------


def raw_prefill(runner: ModelRunner, prompt: list[int], seq: int) -> float:
    """Prefill one prompt in budget-sized chunks; return tokens/s."""
    runner.seq_rm(seq)
    chunk = runner.config.n_batch
    start = time.perf_counter()
    for i in range(0, len(prompt), chunk):
        part = prompt[i : i + chunk]
        runner.batch.clear()
        runner.batch.add(part, i, seq, i + len(part) == len(prompt))
        runner.decode()
    return len(prompt) / (time.perf_counter() - start)


def raw_decode(
    runner: ModelRunner, batch: list[list[int]], gen: int, outputs: int | None = None
) -> float:
    """Prefill every prompt, then time ``gen`` steps of one token per sequence, with logits
    for the first ``outputs`` sequences (default: all, as when every sequence samples)."""
    outputs = len(batch) if outputs is None else outputs
    for seq, prompt in enumerate(batch):
        raw_prefill(runner, prompt, seq)
    start = time.perf_counter()
    for step in range(gen):
        runner.batch.clear()
        for seq, prompt in enumerate(batch):
            runner.batch.add([2000 + step], len(prompt) + step, seq, seq < outputs)
        runner.decode()
    elapsed = time.perf_counter() - start
    for seq in range(len(batch)):
        runner.seq_rm(seq)
    return len(batch) * gen / elapsed


# -- the engine ------------------------------------------------------------------------


async def engine_run(engine: AsyncEngine, batch: list[list[int]], gen: int) -> tuple[float, float]:
    """Run all prompts at once; return (steady-state decode tokens/s, first prefill tokens/s).

    Steady state is the window in which every sequence is decoding: from the moment the
    last one produced its first token to the moment the first one finished.
    """
    params = SamplingParams(max_tokens=gen, temperature=0, ignore_eos=True)
    stamps: list[list[float]] = [[] for _ in batch]
    t0 = time.perf_counter()

    async def one(i: int, prompt: list[int]) -> None:
        async with engine.generate(
            GenerationRequest(f"bench-{time.time_ns()}-{i}", prompt, params)
        ) as stream:
            async for out in stream:
                stamps[i].extend([time.perf_counter()] * len(out.tokens))

    await asyncio.gather(*(one(i, p) for i, p in enumerate(batch)))
    all_started = max(s[0] for s in stamps)
    first_done = min(s[-1] for s in stamps)
    window = [t for s in stamps for t in s if all_started < t <= first_done]
    decode = len(window) / (first_done - all_started) if first_done > all_started else 0.0
    prefill = len(batch[0]) / (stamps[0][0] - t0)
    return decode, prefill


def _config(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        ctx_size=args.prompt_tokens + args.gen_tokens + 8,
        max_seqs=max(_levels(args)),
        batch_tokens=512,
        threads=args.threads,
        kv_unified=args.kv_unified,
    )


def _levels(args: argparse.Namespace) -> list[int]:
    return [int(c) for c in args.concurrency.split(",")]


def raw_ceiling(args: argparse.Namespace) -> list[float]:
    """Prefill tokens/s, then decode tokens/s per concurrency, straight through llama_decode.

    Runs in its own process: llama.cpp's OpenMP threads spin between decodes only while
    libgomp manages no more threads than there are CPUs, so a second thread calling
    ``llama_decode`` in the same process would slow both it and the engine (47 → 28
    tokens/s measured on 2 cores).
    """
    cfg = _config(args)
    runner = ModelRunner(
        RunnerConfig(
            resolve_model_path(cfg.model),
            cfg.ctx_size,
            cfg.max_seqs,
            cfg.batch_tokens,
            cfg.n_threads,
            cfg.kv_unified,
        )
    )
    results = [raw_prefill(runner, prompts(runner, 1, cfg.ctx_size - 2, salt=0)[0], 0)]
    for c in _levels(args):
        results.append(
            raw_decode(runner, prompts(runner, c, args.prompt_tokens, salt=0), args.gen_tokens)
        )
    top = max(_levels(args))
    results.append(
        raw_decode(runner, prompts(runner, top, args.prompt_tokens, 0), args.gen_tokens, 1)
    )
    runner.close()
    return results


async def engine_rates(args: argparse.Namespace) -> list[float]:
    engine = AsyncEngine(_config(args))
    await engine.start()
    runner = engine.core.runner
    try:
        _, prefill = await engine_run(
            engine, prompts(runner, 1, engine.context_length - 2, salt=1), 1
        )
        results = [prefill]
        for salt, c in enumerate(_levels(args), start=2):
            decode, _ = await engine_run(
                engine, prompts(runner, c, args.prompt_tokens, salt), args.gen_tokens
            )
            results.append(decode)
    finally:
        await engine.stop()
    return results


def run(args: argparse.Namespace) -> list[Row]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        raw = pool.apply(raw_ceiling, (args,))
    eng = asyncio.run(engine_rates(args))
    names = ["prefill tokens/s"] + [
        "single-stream decode tokens/s" if c == 1 else f"decode tokens/s, {c} streams"
        for c in _levels(args)
    ]
    top = max(_levels(args))
    names.append(f"decode tokens/s, {top} streams, logits for 1 row (no vocab projection)")
    return [Row(n, e, r) for n, e, r in zip(names, [*eng, None], raw, strict=True)]


def report(rows: list[Row], out: Path | None) -> None:
    table = Table(title="Tether engine vs raw llama_decode (same run, same batches)")
    for col in ("measure", "tether", "raw llama.cpp", "tether / raw"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    for r in rows:
        engine = "—" if r.engine is None else f"{r.engine:.1f}"
        ratio = "—" if r.ratio is None else f"{r.ratio:.0%}"
        table.add_row(r.name, engine, f"{r.raw:.1f}", ratio)
    Console().print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([asdict(r) | {"ratio": r.ratio} for r in rows], indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--kv-unified", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench-results/engine.json"))
    args = parser.parse_args(argv)
    report(run(args), args.out)


if __name__ == "__main__":
    main()
