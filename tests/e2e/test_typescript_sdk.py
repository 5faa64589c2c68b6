"""The TypeScript ``together-ai`` SDK under node: ``ts/stream_chat.mjs`` streams a chat,
``ts/models_list.mjs`` lists models.

The SDK reads on to EOF after ``[DONE]``, so a body left open would hang it: the subprocess
timeout is part of what this checks (wire-contract.md "Stream framing").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server, on_engines

pytestmark = [pytest.mark.e2e, on_engines()]

TS_DIR = Path(__file__).parent / "ts"


def run_script(server: Server, script: str) -> Any:
    """Run one script under node against ``server``; its last line of output, parsed."""
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
        [node, script], cwd=TS_DIR, env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_typescript_sdk_lists_models(server: Server) -> None:
    assert run_script(server, "models_list.mjs") == [{"id": server.model, "context_length": 2048}]


def test_typescript_sdk_streams_chat_to_a_finish_reason(server: Server) -> None:
    result = run_script(server, "stream_chat.mjs")
    assert result["text"].strip()
    assert result["finish_reason"] in {"stop", "length"}
    assert result["chunks"] >= 2
    assert result["usage"]["completion_tokens"] >= 1
