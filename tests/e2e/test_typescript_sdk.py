"""The TypeScript ``together-ai`` SDK (``ts/stream_chat.mjs``) streaming a chat under node.

The SDK reads on to EOF after ``[DONE]``, so a body left open would hang it: the subprocess
timeout is part of what this checks (wire-contract.md "Stream framing").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

TS_DIR = Path(__file__).parent / "ts"


def test_typescript_sdk_streams_chat_to_a_finish_reason(server: Server) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (TS_DIR / "node_modules" / "together-ai").is_dir():
        pytest.skip("together-ai not installed: run `npm install` in tests/e2e/ts (make test does)")
    env = {
        **os.environ,
        "TOGETHER_BASE_URL": server.v1,
        "TOGETHER_API_KEY": "unused",
        "TETHER_MODEL": server.model,
    }

    done = subprocess.run(
        [node, "stream_chat.mjs"], cwd=TS_DIR, env=env, capture_output=True, text=True, timeout=90
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["text"].strip()
    assert result["finish_reason"] in {"stop", "length"}
    assert result["chunks"] >= 2
    assert result["usage"]["completion_tokens"] >= 1
