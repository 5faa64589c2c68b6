"""``python -m tether.bench.soak`` on a small count: it starts its servers, gets its 503s and
200s, and prints the readings (the full run is ``make soak``, not a test)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_soak_reports_rss_and_live_samplers_for_each_phase_and_round(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tether.bench.soak", "--refused", "40", "--completed", "6"]
    command += ["--rounds", "2", "--round-requests", "40", "--hold-tokens", "16"]
    command += ["--threads", "1", "--log", str(tmp_path / "serve.log")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)

    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    phases, rounds = lines[:5], lines[5:]
    assert [line.split(" ")[0] for line in phases] == ["before:", "after", "all", "after", "after"]
    assert "40 refused (40 were 503" in phases[3]
    assert "6 completed (6 were 200" in phases[4]
    samplers = [int(re.search(r"live samplers (-?\d+)", line).group(1)) for line in phases]  # type: ignore[union-attr]
    warm, busy, refused, completed = samplers[1:]
    assert warm == completed == 0  # nothing left allocated once requests end
    assert busy == refused > 0  # the refused requests added nothing to the running ones

    # The refusal rounds (issue 22), on their own server with its own log.
    assert (tmp_path / "serve-rounds.log").exists()
    assert [line.split(" ")[0] for line in rounds] == ["before", "8", "round", "round", "over"]
    for number, line in enumerate(rounds[2:4], start=1):
        answers = re.search(rf"^round {number} of 40 \(([^)]*), \d+ s\): RSS +[\d.]+ MB", line)
        assert answers, line
        counts = {status: int(n) for n, status in re.findall(r"(\d+) x (\d+)", answers.group(1))}
        assert sum(counts.values()) == 40
        assert set(counts) <= {"503", "200"} and counts.get("503", 0) > 0
        assert re.search(r"[+-]\d+\.\d MB$", line)
    assert re.fullmatch(r"over 2 rounds: RSS [+-]\d+\.\d MB", rounds[4])
