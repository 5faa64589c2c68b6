"""``--response-format``: reading the flag, the request bodies of ``tether bench`` that carry
it, and ``tether bench compare`` giving it to both servers (llama-server as ``json_schema``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from rich.progress import Progress

from tests.bench.test_load import ScriptedServer, run
from tether.bench import cli as bench_cli
from tether.bench.compare import cli as compare_cli
from tether.bench.compare import rounds
from tether.bench.compare.settings import LLAMA, TETHER, CompareSettings
from tether.bench.load import BenchSettings, request_body
from tether.bench.report import document
from tether.bench.response_format import llama_server_fields, read
from tether.client.api import ClientError

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}


def test_the_flag_reads_a_file_or_the_json_itself(tmp_path: Path) -> None:
    path = tmp_path / "fmt.json"
    path.write_text(json.dumps(JSON_SCHEMA))
    assert read(str(path)) == JSON_SCHEMA
    assert read('{"type": "json_object"}') == {"type": "json_object"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1]", "expected a response_format object"),
        ('{"json_schema": {}}', "expected a response_format object"),
        ('{"type": "json_schema", "json_schema": {"name": "x"}}', "needs json_schema.schema"),
        ("{not json", "is not JSON"),
    ],
)
def test_the_flag_refuses_what_is_no_response_format(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "fmt.json"
    path.write_text(content)
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        read(str(path))
    with pytest.raises(argparse.ArgumentTypeError, match="cannot read"):
        read(str(tmp_path / "missing.json"))


def test_a_constrained_load_sends_the_format_and_lets_answers_end() -> None:
    server = ScriptedServer()
    settings, measured = run(
        server, concurrency=(2,), requests=2, max_tokens=8, response_format=JSON_SCHEMA
    )
    for body in server.streamed:
        assert body["response_format"] == JSON_SCHEMA
        assert "ignore_eos" not in body and "min_tokens" not in body
        assert body["max_tokens"] == 8
    assert "response_format" not in server.probes[0]  # sizing the prompt is unconstrained
    doc = document(settings, measured)
    assert doc["settings"]["response_format"] == JSON_SCHEMA
    assert doc["command"].endswith(f"--response-format '{json.dumps(JSON_SCHEMA)}'")


def test_an_unconstrained_load_still_asks_for_exactly_max_tokens() -> None:
    body = request_body(BenchSettings(url="http://h:1", max_tokens=8), "m", "text")
    assert (body["ignore_eos"], body["min_tokens"]) == (True, 8)
    assert "response_format" not in body


def test_extra_body_still_has_the_last_word() -> None:
    settings = BenchSettings(
        url="http://h:1", response_format={"type": "json_object"}, extra_body={"ignore_eos": True}
    )
    body = request_body(settings, "m", "text")
    assert body["ignore_eos"] is True and body["response_format"] == {"type": "json_object"}


def test_bench_takes_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "fmt.json"
    path.write_text('{"type": "json_object"}')
    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    args = parser.parse_args(["--url", "http://h:1", "--response-format", str(path)])
    assert bench_cli.settings_from_args(args).response_format == {"type": "json_object"}
    compare = parser.parse_args(["compare", "--response-format", str(path)])
    assert compare.response_format == {"type": "json_object"}


# -- compare -------------------------------------------------------------------------------


def test_llama_server_gets_the_schema_in_its_own_field() -> None:
    assert llama_server_fields(JSON_SCHEMA) == {"json_schema": SCHEMA}
    assert llama_server_fields({"type": "json_object"}) == {"json_schema": {}}
    assert llama_server_fields({"type": "text"}) == llama_server_fields(None) == {}
    with pytest.raises(ValueError, match="no equivalent"):
        llama_server_fields({"type": "regex", "pattern": "a+"})


def test_compare_constrains_both_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, BenchSettings] = {}

    async def sweep(settings: BenchSettings, *_: Any, **__: Any) -> dict[str, Any]:
        seen[settings.name or ""] = settings
        return {"model": "m", "prompt": {}, "results": [{"mode": "closed"}], "next_prompt": 2}

    monkeypatch.setattr(rounds, "sweep", sweep)
    s = CompareSettings(response_format=JSON_SCHEMA)
    with Progress(disable=True) as bar:
        for name in (LLAMA, TETHER):
            rounds.ServerRun(s, name, "http://h:1", bar).closed(4)
    llama = request_body(seen[LLAMA], "m", "text")
    tether = request_body(seen[TETHER], "m", "text")
    assert llama["response_format"] == tether["response_format"] == JSON_SCHEMA
    assert llama["json_schema"] == SCHEMA and "json_schema" not in tether
    assert "ignore_eos" not in llama and "ignore_eos" not in tether


def test_compare_refuses_a_format_llama_server_cannot_apply() -> None:
    parser = argparse.ArgumentParser()
    compare_cli.add_arguments(parser, bench_cli._levels)
    args = parser.parse_args(["--response-format", '{"type": "regex", "pattern": "a+"}'])
    with pytest.raises(ClientError, match="llama-server has no equivalent"):
        compare_cli.run_command(args)
