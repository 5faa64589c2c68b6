"""The flags of ``tether bench schemas`` (``bench/cli.py`` mounts them), what they run, and
the tables it prints: the outcomes per source, then the refusals and the wrong answers."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tether.bench.schemas import OUTCOMES, SchemaBenchSettings, run
from tether.client.api import ClientError

LISTED = 12  # refusal messages and invalid answers printed under the table


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = SchemaBenchSettings(url="")
    p.add_argument("--url", help="base URL of the server, with or without /v1 (required)")
    p.add_argument("--api-key", help="Bearer key, if the server wants one")
    p.add_argument("--model", help="model to ask for (default: the first the server lists)")
    p.add_argument(
        "--concurrency", type=int, default=d.concurrency, help="requests at a time (default 8)"
    )
    p.add_argument("--max-tokens", type=int, default=d.max_tokens, help="per answer (default 384)")
    p.add_argument(
        "--corpus",
        type=Path,
        default=d.corpus,
        help="a JSONL file of {id, source, schema} (default: the vendored JSONSchemaBench sample)",
    )
    p.add_argument(
        "--source",
        dest="sources",
        action="append",
        default=[],
        help="only this source's schemas (Github_easy, Kubernetes, ...); may repeat",
    )
    p.add_argument("--limit", type=int, help="at most this many schemas per source")
    p.add_argument(
        "--timeout",
        type=float,
        default=d.timeout_s,
        help="seconds to wait for one answer before calling it an error (default 900)",
    )
    p.add_argument(
        "--id", dest="ids", action="append", default=[], help="only this schema; may repeat"
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        help="leave this schema out (e.g. one that crashes the server); may repeat",
    )
    p.add_argument("--json", type=Path, help="also write the summary and every result here")


def run_command(args: argparse.Namespace) -> None:
    """``tether bench schemas``: send the corpus, print the tables, write ``--json``."""
    from tether.bench import report

    if not args.url:
        raise ClientError("--url is required")
    try:
        import jsonschema  # noqa: F401
    except ImportError as exc:
        raise ClientError("tether bench schemas needs the jsonschema package") from exc
    try:
        settings = SchemaBenchSettings(
            url=args.url,
            model=args.model,
            api_key=args.api_key,
            concurrency=args.concurrency,
            max_tokens=args.max_tokens,
            corpus=args.corpus,
            sources=tuple(args.sources),
            limit=args.limit,
            timeout_s=args.timeout,
            ids=tuple(args.ids),
            skip=tuple(args.skip),
        )
    except ValueError as exc:
        raise ClientError(str(exc)) from exc
    cases = settings.cases()
    with report.progress() as bar:
        task = bar.add_task("schemas", total=len(cases))
        doc = asyncio.run(run(settings, cases, lambda: bar.advance(task)))
    print_tables(doc)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_tables(doc: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    s = doc["summary"]
    table = Table(
        title=f"JSON-schema coverage: {doc['model']} at {doc['url']}, "
        f"max_tokens {doc['settings']['max_tokens']}, {doc['wall_s']:g} s"
    )
    headers = ("source", "schemas", *OUTCOMES, "compiled", "valid", "valid/completed")
    for header in headers:
        table.add_column(header.replace("bad_schema", "bad"), justify="right")
    table.columns[0].justify = "left"
    rows = [*s["by_source"].items(), ("all", s)]
    for i, (source, tally) in enumerate(rows):
        sh = tally["shares"]
        table.add_row(
            source,
            str(tally["total"]),
            *(str(tally[o]) for o in OUTCOMES),
            _percent(sh["compiled"]),
            _percent(sh["valid"]),
            _percent(sh["valid_of_completed"]),
            end_section=i == len(rows) - 2,
        )
    console.print(table)
    sh = s["shares"]
    console.print(
        f"{s['total']} schemas, {s['counted']} counted ({s['bad_schema']} bad schemas left "
        f"out): compiled {_percent(sh['compiled'])}, valid {_percent(sh['valid'])} of all "
        f"and {_percent(sh['valid_of_completed'])} of completed, refused "
        f"{_percent(sh['refused'])}; {s['invalid']} invalid, {s['cut']} cut, "
        f"{s['error']} errors",
        markup=False,
    )
    _listing(console, doc, "refused", "refusals, by message")
    _listing(console, doc, "invalid", "invalid answers")
    _listing(console, doc, "error", "errors, by message")
    _listing(console, doc, "bad_schema", "bad schemas, by message")


def _listing(console: Console, doc: dict[str, Any], outcome: str, title: str) -> None:
    """The commonest messages of ``outcome``'s results, each with a count and example ids."""
    results = [r for r in doc["results"] if r["outcome"] == outcome]
    if not results:
        return
    by_message = Counter(r["message"] or "" for r in results)
    table = Table(title=f"{title} ({len(results)})", show_lines=False)
    table.add_column("n", justify="right")
    table.add_column("message")
    table.add_column("schemas")
    for message, n in by_message.most_common(LISTED):
        ids = [r["id"] for r in results if (r["message"] or "") == message]
        more = f" +{len(ids) - 3}" if len(ids) > 3 else ""
        table.add_row(str(n), message, ", ".join(ids[:3]) + more)
    if len(by_message) > LISTED:
        table.caption = f"and {len(by_message) - LISTED} other messages (see --json)"
    console.print(table)
