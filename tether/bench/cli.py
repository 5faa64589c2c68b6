"""The flags of ``tether bench`` (also ``python -m tether.bench.cli``) and what they run.

``tether/cli.py`` mounts ``add_arguments`` as its ``bench`` subcommand and calls
``run_command``; the load itself is ``bench.load``, its outputs ``bench.report``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from tether.argtypes import json_object
from tether.bench import response_format
from tether.bench.load import BenchSettings, sweep
from tether.bench.load import __doc__ as load_doc
from tether.client.api import ClientError


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,4,16, got {text!r}") from exc
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"concurrency levels must be positive, got {text!r}")
    return levels


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected rates like 0.5,1.2, got {text!r}") from exc
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"rates must be positive, got {text!r}")
    return rates


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="base URL of the server, with or without /v1 (required)")
    p.add_argument("--api-key", help="Bearer key, if the server wants one")
    p.add_argument("--model", help="model to ask for (default: the first the server lists)")
    p.add_argument(
        "--concurrency",
        type=_levels,
        default=(1, 4, 16),
        help="comma-separated levels to sweep (default 1,4,16)",
    )
    p.add_argument(
        "--rate",
        type=_rates,
        default=(),
        metavar="R[,R...]",
        help="open loop instead: Poisson arrivals at R requests/s (comma-separated rates)",
    )
    p.add_argument("--requests", type=int, default=32, help="requests per level (default 32)")
    p.add_argument(
        "--duration",
        type=float,
        default=120.0,
        help="seconds per level: no request starts after this (default 120)",
    )
    p.add_argument("--prompt-tokens", type=int, default=128, help="prompt length (default 128)")
    p.add_argument(
        "--max-tokens", type=int, default=128, help="output length of every request (default 128)"
    )
    p.add_argument("--name", help="this server's name in the table and chart (default host:port)")
    p.add_argument(
        "--extra-body",
        type=json_object,
        default={},
        help="JSON object merged into every request body",
    )
    p.add_argument(
        "--response-format",
        type=response_format.read,
        metavar="FILE",
        help="a JSON file (or the JSON itself) holding an OpenAI response_format object, sent "
        "with every request: constrained decoding, each answer ending where its JSON does",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        help="folder for the JSON result and PNG chart (default: current folder)",
    )
    p.add_argument(
        "--chart",
        type=Path,
        nargs="+",
        metavar="RESULT_JSON",
        help="no load: chart these result files together into OUT/bench-chart.png",
    )
    sub = p.add_subparsers(dest="bench_command", metavar="{compare,schemas,models}")
    from tether.bench import compare, models, schemas, schemas_cli
    from tether.bench.compare import cli as compare_cli

    compare_cli.add_arguments(
        sub.add_parser(
            "compare",
            help="Tether against llama.cpp's llama-server, built from the same sources",
            description=(compare.__doc__ or "").replace("``", ""),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        ),
        _levels,
    )
    schemas_cli.add_arguments(
        sub.add_parser(
            "schemas",
            help="JSON-schema coverage: a sample of JSONSchemaBench as response formats",
            description=(schemas.__doc__ or "").replace("``", ""),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )

    models.add_arguments(
        sub.add_parser(
            "models",
            help="several models in one server: cold and warm first token, two at once, RSS",
            description=(models.__doc__ or "").replace("``", ""),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    if not args.url:
        raise ClientError("--url is required (or --chart RESULT_JSON ... to chart old runs)")
    try:
        return BenchSettings(
            url=args.url,
            concurrency=args.concurrency,
            requests=args.requests,
            duration_s=args.duration,
            prompt_tokens=args.prompt_tokens,
            max_tokens=args.max_tokens,
            model=args.model,
            api_key=args.api_key,
            name=args.name,
            extra_body=args.extra_body,
            rates=args.rate,
            response_format=args.response_format,
        )
    except ValueError as exc:
        raise ClientError(str(exc)) from exc


def run_command(args: argparse.Namespace) -> None:
    """``tether bench``: run the sweep and write its files, or only chart old ones."""
    from tether.bench import report

    if getattr(args, "bench_command", None) == "compare":
        from tether.bench.compare import cli as compare_cli

        compare_cli.run_command(args)
        return
    if getattr(args, "bench_command", None) == "models":
        from tether.bench import models

        models.run(args)
        return
    if getattr(args, "bench_command", None) == "schemas":
        from tether.bench import schemas_cli

        schemas_cli.run_command(args)
        return
    if args.chart:
        path = report.chart_files(args.chart, args.out)
        print(f"wrote {path}")
        return
    settings = settings_from_args(args)
    with report.progress() as bar:
        measured = asyncio.run(sweep(settings, bar))
    document = report.document(settings, measured)
    report.print_table(document)
    for path in report.write(document, args.out):
        print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tether.bench.cli``, the same as ``tether bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m tether.bench.cli",
        description=(load_doc or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    try:
        run_command(parser.parse_args(argv))
    except ClientError as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
