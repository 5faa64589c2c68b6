"""The JSON schemas ``tether bench schemas`` sends: a sample of JSONSchemaBench, vendored.

The sample is ``bench/data/jsonschemabench/schemas.jsonl``, one ``{"id", "source",
"schema"}`` object a line; the README beside it names the upstream commit. It is drawn by
``sample`` from guidance-ai/jsonschemabench, where every schema is one file
``data/<source>/<name>.json``: per source, the files ordered by the SHA-256 of their path (a
fixed order that mixes the upstream numbering), the first ``PER_SOURCE`` of at most
``MAX_BYTES`` each (a few sources are mostly larger; they give fewer). To draw it again::

    python -m tether.bench.corpus /path/to/jsonschemabench/.git [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.client.api import ClientError

CORPUS = Path(__file__).parent / "data" / "jsonschemabench" / "schemas.jsonl"
PER_SOURCE = 18
MAX_BYTES = 32 * 1024


@dataclass(frozen=True)
class SchemaCase:
    """One schema of the corpus: ``id`` is ``<source>/<upstream file name without .json>``."""

    id: str
    source: str
    schema: dict[str, Any]

    def line(self) -> str:
        """This case as a JSONL line (compact; the schema's key order kept: it is the order
        in which a constrained model writes the properties)."""
        record = {"id": self.id, "source": self.source, "schema": self.schema}
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def load(
    path: Path = CORPUS, sources: Sequence[str] = (), limit: int | None = None
) -> list[SchemaCase]:
    """The cases of a JSONL corpus, in file order; with ``sources``, only theirs; with
    ``limit``, at most that many per source."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ClientError(f"cannot read the schema corpus {path}: {exc}") from exc
    cases: list[SchemaCase] = []
    per_source: dict[str, int] = {}
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        case = _case(text, f"{path}:{number}")
        if sources and case.source not in sources:
            continue
        per_source[case.source] = per_source.get(case.source, 0) + 1
        if limit is None or per_source[case.source] <= limit:
            cases.append(case)
    unknown = set(sources) - set(per_source)
    if unknown:
        raise ClientError(f"no schema of source {', '.join(sorted(unknown))} in {path}")
    return cases


def _case(text: str, where: str) -> SchemaCase:
    try:
        record = json.loads(text)
        case = SchemaCase(str(record["id"]), str(record["source"]), record["schema"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"{where}: not a corpus line ({exc})") from exc
    if not isinstance(case.schema, dict):
        raise ClientError(f"{where}: the schema is not a JSON object")
    return case


# -- drawing the sample from upstream ----------------------------------------------------


def sample(
    git_dir: Path, per_source: int = PER_SOURCE, max_bytes: int = MAX_BYTES
) -> list[SchemaCase]:
    """The sample of the upstream repository at ``git_dir``'s HEAD, by the module's rule.
    A file whose blob the clone lacks, or whose JSON is not an object, is passed over."""
    files: dict[str, list[tuple[str, int]]] = {}
    for path, size in _tree(git_dir):
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "data" and parts[2].endswith(".json"):
            files.setdefault(parts[1], []).append((path, size))
    cases = []
    for source in sorted(files):
        order = sorted(files[source], key=lambda f: hashlib.sha256(f[0].encode()).hexdigest())
        taken = 0
        for path, size in order:
            if taken == per_source:
                break
            if size > max_bytes:
                continue
            schema = json.loads(_git(git_dir, "show", f"HEAD:{path}"))
            if isinstance(schema, dict):
                name = path.rsplit("/", 1)[1].removesuffix(".json")
                cases.append(SchemaCase(f"{source}/{name}", source, schema))
                taken += 1
    return cases


def _tree(git_dir: Path) -> list[tuple[str, int]]:
    """Every file at HEAD with its size (a blob missing from a partial clone has none)."""
    out = []
    for row in _git(git_dir, "ls-tree", "-r", "-l", "HEAD").splitlines():
        meta, path = row.split("\t", 1)
        size = meta.split()[3]
        if size.isdigit():
            out.append((path, int(size)))
    return out


def _git(git_dir: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(git_dir), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ClientError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tether.bench.corpus GIT_DIR``: draw the sample again and write it."""
    parser = argparse.ArgumentParser(
        prog="python -m tether.bench.corpus",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("git_dir", type=Path, help="a clone of guidance-ai/jsonschemabench")
    parser.add_argument("--out", type=Path, default=CORPUS, help="the JSONL file to write")
    args = parser.parse_args(argv)
    try:
        cases = sample(args.git_dir)
        commit = _git(args.git_dir, "rev-parse", "HEAD").strip()
    except ClientError as exc:
        raise SystemExit(f"error: {exc}") from exc
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(case.line() + "\n" for case in cases), encoding="utf-8")
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.source] = counts.get(case.source, 0) + 1
    print(f"wrote {len(cases)} schemas of {commit} to {args.out}: {counts}")


if __name__ == "__main__":
    main()
