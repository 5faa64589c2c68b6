"""``tether bench schemas``: the vendored corpus, the outcome of each answer, the shares, and
a run against a scripted server (httpx's MockTransport)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from tether.bench import corpus
from tether.bench.cli import add_arguments
from tether.bench.corpus import SchemaCase, load, sample
from tether.bench.schemas import (
    BadSchema,
    Result,
    SchemaBenchSettings,
    classify,
    run,
    summarize,
    validator,
)
from tether.bench.schemas_cli import print_tables
from tether.client.api import ClientError

PERSON = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
    "required": ["name"],
}
CASE = SchemaCase("Test/person", "Test", PERSON)


def answer(content: str | None, finish: str | None = "stop", tokens: int = 7) -> str:
    return json.dumps(
        {
            "choices": [{"message": {"role": "assistant", "content": content},
                         "finish_reason": finish}],
            "usage": {"completion_tokens": tokens},
        }
    )  # fmt: skip


def outcome(status: int, body: str, case: SchemaCase = CASE) -> Result:
    return classify(case, validator(case.schema), status, body)


# -- the corpus ------------------------------------------------------------------------


def test_the_vendored_sample_spans_every_source_and_every_schema_is_checkable() -> None:
    cases = load()
    assert 120 <= len(cases) <= 200
    assert corpus.CORPUS.stat().st_size < 1_500_000
    assert len({case.id for case in cases}) == len(cases)
    sources = {case.source for case in cases}
    assert {"Github_easy", "Github_hard", "Glaiveai2K", "Kubernetes", "Snowplow"} <= sources
    for case in cases:
        assert case.id.startswith(case.source + "/")
        validator(case.schema)  # would raise BadSchema
    folder = corpus.CORPUS.parent
    readme = (folder / "README.md").read_text()
    assert "guidance-ai/jsonschemabench" in readme
    assert "ba103c73756198dd9b149ddc7db7867da7a077f6" in readme


def test_load_keeps_only_the_asked_sources_and_at_most_limit_of_each(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    lines = [SchemaCase(f"{s}/{i}", s, {"type": "object"}).line() for s in "ab" for i in range(3)]
    path.write_text("\n".join(lines) + "\n\n")
    assert [c.id for c in load(path, limit=2)] == ["a/0", "a/1", "b/0", "b/1"]
    assert [c.id for c in load(path, sources=("b",))] == ["b/0", "b/1", "b/2"]
    with pytest.raises(ClientError, match="no schema of source c"):
        load(path, sources=("c",))


def test_a_run_can_pick_or_skip_schemas_by_id(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("".join(SchemaCase(f"a/{i}", "a", {}).line() + "\n" for i in range(3)))
    settings = SchemaBenchSettings(url="http://h:1", corpus=path, ids=("a/0", "a/2"))
    assert [c.id for c in settings.cases()] == ["a/0", "a/2"]
    settings = SchemaBenchSettings(url="http://h:1", corpus=path, skip=("a/1",))
    assert [c.id for c in settings.cases()] == ["a/0", "a/2"]
    assert settings.command().endswith(f"--corpus {path} --skip a/1")
    with pytest.raises(ClientError, match="no schema a/9"):
        SchemaBenchSettings(url="http://h:1", corpus=path, ids=("a/9",)).cases()


def test_a_broken_corpus_line_names_its_place(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a/1", "source": "a", "schema": {}}\n{"id": "a/2"}\n')
    with pytest.raises(ClientError, match=r"c\.jsonl:2: not a corpus line"):
        load(path)
    with pytest.raises(ClientError, match="cannot read"):
        load(tmp_path / "missing.jsonl")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_the_sample_takes_per_source_the_first_small_files_in_hash_order(tmp_path: Path) -> None:
    repo = tmp_path / "upstream"
    for i in range(5):
        (repo / "data" / "A").mkdir(parents=True, exist_ok=True)
        (repo / "data" / "A" / f"s{i}.json").write_text(json.dumps({"title": f"a{i}"}))
    (repo / "data" / "B").mkdir()
    (repo / "data" / "B" / "big.json").write_text(json.dumps({"description": "x" * 500}))
    (repo / "data" / "B" / "true.json").write_text("true")  # not an object: passed over
    (repo / "data" / "B" / "small.json").write_text(json.dumps({"type": "string"}))
    (repo / "README.md").write_text("not data")
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "data")
    cases = sample(repo / ".git", per_source=3, max_bytes=100)
    assert [c.source for c in cases] == ["A", "A", "A", "B"]
    assert cases[3] == SchemaCase("B/small", "B", {"type": "string"})
    again = sample(repo / ".git", per_source=3, max_bytes=100)
    assert again == cases  # the order is the hash's, not the file system's


# -- one answer's outcome ----------------------------------------------------------------


def test_a_400_is_a_refusal_with_the_servers_message() -> None:
    body = json.dumps({"error": {"message": "uniqueItems cannot be enforced", "code": 400}})
    r = outcome(400, body)
    assert (r.outcome, r.message, r.status) == ("refused", "uniqueItems cannot be enforced", 400)


def test_other_statuses_are_errors_that_keep_status_and_message() -> None:
    r = outcome(503, json.dumps({"error": {"message": "queue full"}}))
    assert (r.outcome, r.message, r.status) == ("error", "queue full", 503)
    assert outcome(200, "not json").outcome == "error"


def test_an_answer_the_schema_accepts_is_valid() -> None:
    r = outcome(200, answer('{"name": "Ada", "email": "ada@example.com"}'))
    assert (r.outcome, r.message, r.finish_reason, r.completion_tokens) == (
        "valid",
        None,
        "stop",
        7,
    )
    assert r.output == '{"name": "Ada", "email": "ada@example.com"}'


def test_a_finished_answer_the_schema_rejects_is_invalid_with_the_error() -> None:
    r = outcome(200, answer('{"name": 3}'))
    assert r.outcome == "invalid"
    assert r.message == "at /name: 3 is not of type 'string'"
    missing = outcome(200, answer("{}"))
    assert missing.message == "at /: 'name' is a required property"
    assert outcome(200, answer('{"name": "x"')).message.startswith("not JSON")  # type: ignore[union-attr]


def test_formats_are_checked_by_the_schemas_own_draft() -> None:
    r = outcome(200, answer('{"name": "Ada", "email": "not an address"}'))
    assert (r.outcome, r.message) == ("invalid", "at /email: 'not an address' is not a 'email'")


def test_an_answer_cut_by_max_tokens_is_cut_even_if_it_parses() -> None:
    assert outcome(200, answer('{"name": "x"}', finish="length")).outcome == "cut"


def test_another_finish_reason_is_an_error() -> None:
    r = outcome(200, answer(None, finish="tool_calls"))
    assert (r.outcome, r.message) == ("error", "finish_reason 'tool_calls'")


def test_a_schema_the_checker_cannot_apply_is_a_bad_schema() -> None:
    remote = SchemaCase("T/remote", "T", {"$ref": "https://example.com/s.json"})
    r = outcome(200, answer("{}"), remote)
    assert r.outcome == "bad_schema" and "https://example.com/s.json" in (r.message or "")
    with pytest.raises(BadSchema, match="not a valid Draft7Validator schema"):
        validator({"$schema": "http://json-schema.org/draft-07/schema#", "type": "thing"})


# -- the shares --------------------------------------------------------------------------


def results(**how_many: int) -> list[Result]:
    return [Result(f"S/{o}{i}", "S", o) for o, n in how_many.items() for i in range(n)]


def test_the_shares_leave_bad_schemas_out() -> None:
    s = summarize(results(valid=5, invalid=1, cut=1, refused=2, error=1, bad_schema=3))
    assert (s["total"], s["counted"], s["bad_schema"]) == (13, 10, 3)
    assert s["shares"] == {
        "compiled": 0.8,
        "valid": 0.5,
        "valid_of_completed": round(5 / 6, 4),
        "refused": 0.2,
    }
    assert s["by_source"]["S"]["valid"] == 5


def test_a_run_of_only_refusals_has_no_share_of_completed() -> None:
    assert summarize(results(refused=2))["shares"]["valid_of_completed"] is None


# -- a run against a scripted server -------------------------------------------------------


class ScriptedServer:
    """Refuses schemas with ``uniqueItems``, answers the rest with ``{"name": "x"}``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = self.peak = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m"}]})
        body = json.loads(request.content)
        self.bodies.append(body)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        schema = body["response_format"]["json_schema"]["schema"]
        if "uniqueItems" in json.dumps(schema):
            return httpx.Response(400, json={"error": {"message": "uniqueItems is not enforced"}})
        return httpx.Response(200, content=answer('{"name": "x"}'))


def test_a_run_sends_every_schema_strictly_a_few_at_a_time() -> None:
    cases = [
        CASE,
        SchemaCase("T/tags", "T", {"type": "array", "uniqueItems": True}),
        SchemaCase("T/bad", "T", {"type": 12}),
        *(SchemaCase(f"T/obj{i}", "T", {"type": "object"}) for i in range(5)),
    ]
    server = ScriptedServer()
    settings = SchemaBenchSettings(url="http://scripted:1/v1", concurrency=2, max_tokens=50)
    doc = asyncio.run(run(settings, cases, transport=httpx.MockTransport(server.handle)))
    assert len(server.bodies) == 7  # the bad schema is not sent
    assert server.peak <= 2
    body = server.bodies[0]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "s", "schema": PERSON, "strict": True},
    }
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("m", 0, 50)
    assert [r["outcome"] for r in doc["results"]][:3] == ["valid", "refused", "bad_schema"]
    assert doc["summary"]["valid"] == 6 and doc["summary"]["refused"] == 1
    assert doc["command"] == (
        "tether bench schemas --url http://scripted:1/v1 --concurrency 2 --max-tokens 50"
    )
    console = Console(record=True, width=200)
    print_tables(doc, console)
    text = console.export_text()
    assert "refusals, by message (1)" in text and "uniqueItems is not enforced" in text
    assert "compiled 85.7%" in text


def test_bench_mounts_schemas_with_its_own_flags() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["schemas", "--url", "http://h:1", "--concurrency", "3", "--source", "Kubernetes"]
    )
    assert (args.bench_command, args.url, args.concurrency) == ("schemas", "http://h:1", 3)
    assert (args.max_tokens, args.sources, args.json) == (384, ["Kubernetes"], None)


def test_an_answer_that_never_comes_is_an_error_that_says_so() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        raise httpx.ReadTimeout("", request=request)

    settings = SchemaBenchSettings(url="http://scripted:1", timeout_s=5)
    doc = asyncio.run(run(settings, [CASE], transport=httpx.MockTransport(handle)))
    [result] = doc["results"]
    assert (result["outcome"], result["message"]) == ("error", "no answer in 5 s (ReadTimeout)")
    assert doc["settings"]["timeout_s"] == 5
    assert "--timeout 5" in doc["command"]
