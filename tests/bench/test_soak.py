"""``python -m tether.bench.soak`` on a small count: it starts its server, gets its 503s and 200s,
and prints the readings (the full 10,000 / 1,000 run is ``make soak``, not a test)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_soak_reports_rss_and_live_samplers_for_each_phase(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tether.bench.soak", "--refused", "40", "--completed", "6"]
    command += ["--threads", "1", "--log", str(tmp_path / "serve.log")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)

    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["before:", "after", "all", "after", "after"]
    assert "40 refused (40 were 503" in lines[3]
    assert "6 completed (6 were 200" in lines[4]
    samplers = [int(re.search(r"live samplers (-?\d+)", line).group(1)) for line in lines]  # type: ignore[union-attr]
    warm, busy, refused, completed = samplers[1:]
    assert warm == completed == 0  # nothing left allocated once requests end
    assert busy == refused > 0  # the refused requests added nothing to the running ones
