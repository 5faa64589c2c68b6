"""The README's code blocks, run against a real ``tether serve`` so they cannot rot.

What runs is chosen by each fence's info string:

- ``python``: run by this interpreter, with the variables that the README's ``sh env`` blocks
  export. A block that uses ``Together(`` runs twice: with ``TOGETHER_BASE_URL`` as written
  and with ``/v1`` appended, the two forms the README promises.
- ``sh``: run by ``bash -eo pipefail`` in a temp folder, with this environment's ``tether``
  first on ``PATH``.
- ``sh env``: ``export NAME=VALUE`` lines, applied to the python blocks.
- ``sh skip``, ``text`` and anything else: shown to the reader, never run (they install
  packages, start long-running servers, wait for typing or take minutes).

In every block, ``127.0.0.1:8000`` (the README's address) becomes the test server's. A block
passes when it exits 0 and prints something; a streamed ``curl -N`` must end its output
with ``data: [DONE]`` and a plain ``curl`` must print a JSON completion.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import RunningServer, env_without_tether
from tether.cli import SERVE_FLAGS, parser

README = Path(__file__).resolve().parents[1] / "README.md"
README_ADDRESS = "127.0.0.1:8000"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
TIMEOUT_S = 180


@dataclass(frozen=True)
class Block:
    info: str
    code: str
    line: int

    @property
    def id(self) -> str:
        return f"line{self.line}-{self.info.replace(' ', '-') or 'plain'}"

    def on(self, server: RunningServer) -> str:
        return self.code.replace(README_ADDRESS, server.address)


def blocks(info: str | None = None) -> list[Block]:
    text = README.read_text()
    found = [
        Block(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]
    return [b for b in found if info is None or b.info == info]


def readme_env(server: RunningServer) -> dict[str, str]:
    """What the README tells the reader to ``export``, pointed at ``server``."""
    env = {}
    for block in blocks("sh env"):
        for line in block.on(server).splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value
    return env


def python_runs() -> list[object]:
    runs: list[object] = []
    for block in blocks("python"):
        suffixes = ["", "/v1"] if "Together(" in block.code else [""]
        runs += [pytest.param(block, s, id=f"{block.id}{s.replace('/', '-')}") for s in suffixes]
    return runs


def run_block(
    argv: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one README block; it must succeed and print something."""
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), result.stderr
    return result


@pytest.mark.parametrize(("block", "suffix"), python_runs())
def test_python_block(block: Block, suffix: str, tether_server: RunningServer) -> None:
    env = {**env_without_tether(), **readme_env(tether_server)}
    env["TOGETHER_BASE_URL"] += suffix
    run_block([sys.executable, "-c", block.on(tether_server)], env)


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in blocks("sh")])
def test_shell_block(block: Block, tether_server: RunningServer, tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {**env_without_tether(), "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    result = run_block(["bash", "-eo", "pipefail", "-c", block.on(tether_server)], env, tmp_path)
    if block.code.startswith("curl -N"):
        assert result.stdout.rstrip().endswith("data: [DONE]")
    elif block.code.startswith("curl"):
        assert json.loads(result.stdout)["choices"][0]["text"]


def test_the_readme_opens_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    first_fence = next(i for i, line in enumerate(lines) if line.startswith("```"))
    assert lines[0].startswith("# ")
    tagline = [line for line in lines[1:first_fence] if line.strip()]
    assert len(tagline) <= 1
    assert lines[first_fence + 1 : first_fence + 4] == ["make serve", "make test", "```"]


def test_the_readme_documents_every_flag_of_every_command() -> None:
    text = README.read_text()
    for flag in SERVE_FLAGS:
        assert f"| `{flag.option}` | `{flag.env}` |" in text
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, command in commands.items():
        options = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
        missing = [o for o in options if o != "--help" and f"`{o}`" not in text]
        assert not missing, f"tether {name}: README lacks {missing}"


def test_some_blocks_run_and_some_are_marked_skip() -> None:
    # A typo in an info string ("shell", "py") would silently stop a block from running.
    infos = {block.info for block in blocks()}
    assert infos == {"sh", "sh skip", "sh env", "python", "text"}
