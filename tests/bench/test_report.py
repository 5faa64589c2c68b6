"""``bench.report``: the files a run leaves behind, the table, the chart of several runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tether.bench.metrics import Sample, summarize
from tether.bench.report import chart_files, print_table, write
from tether.client.api import ClientError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(name: str, rate: float) -> dict[str, Any]:
    sample = Sample(ok=True, latency_s=1.0, output_tokens=8, ttft_s=0.1, gaps_s=[0.05] * 7)
    levels = [summarize(c, [sample] * c, wall_s=c / rate) for c in (1, 4, 16)]
    return {
        "schema": 1,
        "name": name,
        "url": "http://h:1",
        "model": "m",
        "settings": {
            "concurrency": [1, 4, 16],
            "requests": 4,
            "duration_s": 60,
            "prompt_tokens": 16,
            "max_tokens": 8,
            "extra_body": {},
        },
        "results": levels,
    }


def test_a_run_writes_its_json_and_png_named_after_the_server(tmp_path: Path) -> None:
    paths = write(result("llama.cpp server", 2.0), tmp_path / "out")
    assert [p.name for p in paths] == ["bench-llama.cpp-server.json", "bench-llama.cpp-server.png"]
    assert json.loads(paths[0].read_text())["name"] == "llama.cpp server"
    assert paths[1].read_bytes().startswith(PNG_MAGIC)


def test_several_result_files_chart_together(tmp_path: Path) -> None:
    files = []
    for name, rate in (("tether", 3.0), ("other", 1.0)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(result(name, rate)))
    chart = chart_files(files, tmp_path)
    assert chart == tmp_path / "bench-chart.png"
    assert chart.read_bytes().startswith(PNG_MAGIC)


def test_charting_a_file_that_is_not_a_result_says_which(tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ClientError, match=r"notes\.json is not a tether bench result file"):
        chart_files([bad], tmp_path)


def test_the_table_has_a_row_per_concurrency_level() -> None:
    console = Console(record=True, width=120)
    print_table(result("tether", 2.0), console)
    text = console.export_text()
    assert "tether: m, prompt 16 tokens, output 8 tokens" in text
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["1", "4", "16"]
    assert "16.0" in rows[0]  # output tokens/s: 8 tokens x 1 request / 0.5 s
    assert "100 / 100 / 100" in rows[0]  # TTFT ms p50/90/99
