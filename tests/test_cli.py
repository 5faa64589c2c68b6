"""The ``tether`` command as a user runs it: a subprocess against a real ``tether serve``.

Timings are never asserted: only what a user reads (text, exit status, files, log lines).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, env_without_tether, free_port
from tether.api.access_log import logfmt
from tether.cli import SERVE_ENV, parser, serve_config
from tether.client.api import base_url, choice_text, model_cards, sse_data
from tether.client.chat import ChatSession, run_chat
from tether.config import DEFAULT_MODEL_ID, ServerConfig

EXAMPLE_TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "gemma-think.jinja"

STATS = re.compile(r"^\[(\d+) tokens, [\d.]+ tokens/s, first token \d+ ms\]$", re.MULTILINE)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tether(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**env_without_tether(), **(env or {})},
        timeout=timeout,
        check=False,
    )


# -- serve: flags and environment ------------------------------------------------------


def serve_args(*argv: str) -> argparse.Namespace:
    return parser().parse_args(["serve", *argv])


def test_serve_defaults_without_flags_or_environment() -> None:
    assert serve_config(serve_args(), {}) == ServerConfig()


def test_every_serve_flag_has_a_tether_environment_variable() -> None:
    env = {
        "TETHER_HOST": "0.0.0.0",
        "TETHER_PORT": "9001",
        "TETHER_MODEL": "/models/x.gguf",
        "TETHER_MODEL_ID": "my/model",
        "TETHER_CTX_SIZE": "2048",
        "TETHER_MAX_SEQS": "8",
        "TETHER_MAX_QUEUE": "32",
        "TETHER_BATCH_TOKENS": "256",
        "TETHER_PREFILL_CHUNK": "32",
        "TETHER_THREADS": "3",
        "TETHER_KV_UNIFIED": "yes",
        "TETHER_LENIENT_SCHEMAS": "on",
        "TETHER_LOG_LEVEL": "debug",
        "TETHER_DRAIN_TIMEOUT": "5.5",
        "TETHER_RATE_LIMIT_RPM": "60",
        "TETHER_RATE_LIMIT_TPM": "10000",
        "TETHER_CHAT_TEMPLATE": str(EXAMPLE_TEMPLATE),
        "TETHER_TOOL_CALL_PARSER": "qwen3_coder",
        "TETHER_REASONING_PARSER": "qwen3",
        "TETHER_SAMPLING_DEFAULTS": '{"temperature": 0.7, "top_k": 20}',
        "TETHER_STATE_DB": "/tmp/state.db",
        "TETHER_NO_STORE": "true",
        "TETHER_ENGINE": "vllm",
        "TETHER_MAX_MODEL_LEN": "1024",
        "TETHER_TENSOR_PARALLEL_SIZE": "2",
        "TETHER_PIPELINE_PARALLEL_SIZE": "2",
        "TETHER_DISTRIBUTED_EXECUTOR_BACKEND": "ray",
        "TETHER_GPU_MEMORY_UTILIZATION": "0.8",
        "TETHER_DTYPE": "bfloat16",
        "TETHER_ENFORCE_EAGER": "1",
        "TETHER_ENGINE_ARGS": '{"kv_cache_dtype": "fp8"}',
        "TETHER_SPECULATIVE": "off",
        "TETHER_SPEC_MAX_DRAFT": "8",
        "TETHER_SPECULATIVE_CONFIG": '{"method": "ngram", "num_speculative_tokens": 4}',
        "TETHER_API_KEYS": "k1, k2",
        "TETHER_MODELS_DIR": "/models",
        "TETHER_MODELS_FILE": "/models/models.toml",
        "TETHER_DEFAULT_MODEL": "small",
        "TETHER_MAX_LOADED_MODELS": "2",
        "TETHER_MODELS_MEMORY_GB": "12.5",
        "TETHER_MODEL_TTL": "600",
        "TETHER_ALIASES": "a=small, b=big",
        "TETHER_LORAS": "tuned=/models/tuned.gguf@small",
    }
    assert set(env) == SERVE_ENV
    config = serve_config(serve_args(), env)
    assert config == ServerConfig(
        host="0.0.0.0",
        port=9001,
        model_path="/models/x.gguf",
        model_id="my/model",
        ctx_size=2048,
        max_seqs=8,
        max_queue=32,
        batch_tokens=256,
        prefill_chunk=32,
        threads=3,
        kv_unified=True,
        lenient_schemas=True,
        speculative="off",
        spec_max_draft=8,
        speculative_config={"method": "ngram", "num_speculative_tokens": 4},
        log_level="debug",
        drain_timeout=5.5,
        rate_limit_rpm=60,
        rate_limit_tpm=10000,
        chat_template=str(EXAMPLE_TEMPLATE),
        tool_call_parser="qwen3_coder",
        reasoning_parser="qwen3",
        sampling_defaults={"temperature": 0.7, "top_k": 20},
        state_db="/tmp/state.db",
        no_store=True,
        engine="vllm",
        max_model_len=1024,
        tensor_parallel_size=2,
        pipeline_parallel_size=2,
        distributed_executor_backend="ray",
        gpu_memory_utilization=0.8,
        dtype="bfloat16",
        enforce_eager=True,
        engine_args={"kv_cache_dtype": "fp8"},
        api_keys=("k1", "k2"),
        models_dir="/models",
        models_file="/models/models.toml",
        default_model="small",
        max_loaded_models=2,
        models_memory_gb=12.5,
        model_ttl=600.0,
        aliases=("a=small", "b=big"),
        loras=("tuned=/models/tuned.gguf@small",),
    )


@pytest.mark.parametrize("flag", ["--tool-call-parser", "--reasoning-parser"])
def test_an_unknown_parser_name_is_refused_naming_the_choices(flag: str) -> None:
    with pytest.raises(ValueError, match=r"must be one of .*(hermes|deepseek_r1)"):
        serve_config(serve_args(flag, "nonesuch"), {})


def test_a_boolean_flag_alone_means_true() -> None:
    assert serve_config(serve_args("--no-store"), {}).no_store is True
    assert serve_config(serve_args("--no-store", "false"), {}).no_store is False
    assert serve_config(serve_args("--kv-unified"), {}).kv_unified is True


def test_a_flag_wins_over_its_environment_variable() -> None:
    args = serve_args("--ctx-size", "1024", "--api-key", "a", "--api-key", "b")
    config = serve_config(args, {"TETHER_CTX_SIZE": "2048", "TETHER_API_KEYS": "c"})
    assert config.ctx_size == 1024
    assert config.api_keys == ("a", "b")


def test_a_bad_serve_value_is_a_usage_error_naming_the_field() -> None:
    result = tether("serve", "--max-seqs", "999")
    assert result.returncode == 2
    assert "max_seqs must be in [1, 256]" in result.stderr


def test_a_chat_template_that_cannot_be_used_is_a_usage_error(tmp_path: Path) -> None:
    result = tether("serve", "--chat-template", str(tmp_path / "missing.jinja"))
    assert result.returncode == 2
    assert "chat_template: cannot read" in result.stderr
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}")
    result = tether("serve", "--chat-template", str(broken))
    assert result.returncode == 2
    assert "the chat template does not compile" in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.7", "expected a JSON object"),
        ('{"temprature": 0.7}', "temprature: not a sampling field"),
        ('{"top_p": 2}', "top_p: must be in (0, 1]"),
        ('{"top_k": 0.5}', "top_k: must be an int"),
    ],
)
def test_bad_sampling_defaults_are_a_usage_error(value: str, message: str) -> None:
    result = tether("serve", "--sampling-defaults", value)
    assert result.returncode == 2
    assert message in result.stderr


def test_the_vllm_engine_needs_a_model_and_valid_options() -> None:
    result = tether("serve", "--engine", "vllm")
    assert result.returncode == 2 and "engine vllm needs --model" in result.stderr
    result = tether(
        "serve", "--engine", "vllm", "--model", "m", "--distributed-executor-backend", "x"
    )
    assert result.returncode == 2 and "distributed_executor_backend" in result.stderr
    result = tether("serve", "--engine", "tensorrt")
    assert result.returncode == 2 and "engine must be one of llamacpp, vllm" in result.stderr


def test_a_bad_boolean_in_the_environment_is_a_usage_error() -> None:
    result = tether("serve", env={"TETHER_KV_UNIFIED": "maybe"})
    assert result.returncode == 2
    assert "expected a boolean, got 'maybe'" in result.stderr


def test_access_log_values_with_spaces_are_quoted() -> None:
    line = logfmt({"method": "GET", "path": "/a b", "status": 200})
    assert line == 'method=GET path="/a b" status=200'


def test_serve_prints_a_startup_summary(tether_server: RunningServer) -> None:
    summary = f"model {DEFAULT_MODEL_ID} (embedded, llamacpp), context 2048 x 16 sequences, "
    summary += f"{tether_server.url}, auth off"
    assert summary in tether_server.log_text()


def test_serve_logs_one_structured_line_per_request(tether_server: RunningServer) -> None:
    response = httpx.get(f"{tether_server.url}/v1/models?x=1")
    line = access_line(tether_server, response.headers["x-request-id"])
    fields = dict(pair.split("=", 1) for pair in line.split(" tether.access: ")[1].split())
    assert fields["method"] == "GET"
    assert fields["path"] == "/v1/models"
    assert fields["status"] == "200"
    assert float(fields["duration_ms"]) >= 0
    assert fields["client"].startswith("127.0.0.1:")


def test_access_log_has_the_status_of_errors(tether_server: RunningServer) -> None:
    response = httpx.post(
        f"{tether_server.url}/v1/completions", json={"model": "no-such-model", "prompt": "x"}
    )
    assert response.status_code == 400
    line = access_line(tether_server, response.headers["x-request-id"])
    assert "method=POST path=/v1/completions status=400 " in line


def access_line(server: RunningServer, request_id: str) -> str:
    """The access log line of ``request_id``, written once its response has ended."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in server.log_text().splitlines():
            if "tether.access:" in line and f"request_id={request_id}" in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}:\n{server.log_text()}")


def chat_requests_logged(server: RunningServer, expect: int = 0) -> int:
    """How many chat requests the server logged, waiting up to 5 s for ``expect`` of them
    (a line is written just after its response's last byte)."""
    deadline = time.monotonic() + 5
    while True:
        seen = server.log_text().count("path=/v1/chat/completions status=200")
        if seen >= expect or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


# -- models ----------------------------------------------------------------------------


def test_models_lists_the_served_model(tether_server: RunningServer) -> None:
    result = tether("models", "--url", tether_server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{DEFAULT_MODEL_ID}  context 2048\n"


def test_models_json_prints_the_model_cards(tether_server: RunningServer) -> None:
    result = tether("models", "--json", "--url", tether_server.url + "/v1")
    cards = json.loads(result.stdout)
    assert [card["id"] for card in cards] == [DEFAULT_MODEL_ID]


# -- complete --------------------------------------------------------------------------


def test_complete_streams_text_to_stdout(tether_server: RunningServer) -> None:
    result = tether("complete", "--url", tether_server.url, "--max-tokens", "8", "Once upon a")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n")
    assert result.stdout.strip()
    assert result.stderr == ""


def test_complete_json_prints_one_parseable_chunk_per_line(tether_server: RunningServer) -> None:
    result = tether(
        "complete", "--json", "--url", tether_server.url, "--max-tokens", "8", "Once upon a"
    )
    chunks = [json.loads(line) for line in result.stdout.splitlines()]
    assert {chunk["object"] for chunk in chunks} == {"completion.chunk"}
    assert chunks[-1]["choices"][0]["finish_reason"] in {"length", "stop"}
    assert 1 <= chunks[-1]["usage"]["completion_tokens"] <= 8
    assert "[DONE]" not in result.stdout


def test_complete_without_url_serves_in_process() -> None:
    env = {"TETHER_CTX_SIZE": "256", "TETHER_THREADS": "1"}
    result = tether("complete", "--max-tokens", "4", "The sky is", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_an_unknown_model_is_a_one_line_error(tether_server: RunningServer) -> None:
    result = tether("complete", "--url", tether_server.url, "--model", "nope", "Hi")
    assert result.returncode == 1
    assert result.stderr == (
        f"tether complete: error: Model 'nope' is not available; this server serves "
        f"'{DEFAULT_MODEL_ID}'. (HTTP 400)\n"
    )


def test_an_unreachable_server_is_a_one_line_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = tether("complete", "--url", url, "Hi")
    assert result.returncode == 1
    assert result.stderr.startswith(f"tether complete: error: cannot reach {url}: ")
    assert result.stderr.count("\n") == 1


def test_the_api_key_comes_from_the_flag_or_the_environment(
    tether_auth_server: RunningServer,
) -> None:
    url = tether_auth_server.url
    refused = tether("models", "--url", url)
    assert refused.returncode == 1
    assert "(HTTP 401)" in refused.stderr
    assert tether("models", "--url", url, "--api-key", "secret-key").returncode == 0
    assert tether("models", env={"TETHER_URL": url, "TETHER_API_KEY": "secret-key"}).stdout


# -- chat ------------------------------------------------------------------------------


def test_chat_answers_each_turn_with_a_tokens_per_second_line(
    tether_server: RunningServer,
) -> None:
    before = chat_requests_logged(tether_server)
    stdin = "Hello!\nWhat is the capital of France?\n/exit\nnever sent\n"
    result = tether("chat", "--url", tether_server.url, "--max-tokens", "8", stdin=stdin)
    assert result.returncode == 0, result.stderr
    answers = [int(n) for n in STATS.findall(result.stdout)]
    assert len(answers) == 2 and all(1 <= n <= 8 for n in answers)
    assert chat_requests_logged(tether_server, expect=before + 2) == before + 2  # none after /exit


def test_chat_quits_at_end_of_input(tether_server: RunningServer) -> None:
    result = tether("chat", "--url", tether_server.url, "--max-tokens", "4", stdin="Hi\n")
    assert result.returncode == 0, result.stderr
    assert len(STATS.findall(result.stdout)) == 1


class ScriptedClient:
    """Answers every chat with the same two pieces; records the requests."""

    url = "http://scripted"

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def stream(self, path: str, body: dict[str, Any]) -> Any:
        self.bodies.append(json.loads(json.dumps(body)))  # a snapshot, not the live list
        yield {"choices": [{"delta": {"role": "assistant", "content": "Hi"}}]}
        yield {"choices": [{"delta": {"content": " there"}}], "usage": {"completion_tokens": 2}}


def test_chat_sends_the_whole_conversation_every_turn(capsys: pytest.CaptureFixture[str]) -> None:
    client = ScriptedClient()
    session = ChatSession(client, "m", system="Be brief.", out=sys.stdout)  # type: ignore[arg-type]
    lines = iter(["one", "two", "/reset", "three"])
    run_chat(session, lambda: next(lines, None) or _eof(), interactive=False)
    assert [[m["content"] for m in b["messages"]] for b in client.bodies] == [
        ["Be brief.", "one"],
        ["Be brief.", "one", "Hi there", "two"],
        ["Be brief.", "three"],
    ]
    out = capsys.readouterr().out
    assert out.count("Hi there\n[2 tokens, ") == 3


def _eof() -> str:
    raise EOFError


# -- bench -----------------------------------------------------------------------------


def run_bench(server: RunningServer, out: Path, name: str) -> dict[str, Any]:
    result = tether(
        "bench",
        "--url",
        server.url,
        "--requests",
        "4",
        "--concurrency",
        "1,2",
        "--prompt-tokens",
        "16",
        "--max-tokens",
        "8",
        "--name",
        name,
        "--out",
        str(out),
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote {out / f'bench-{name}.json'}" in result.stdout
    doc: dict[str, Any] = json.loads((out / f"bench-{name}.json").read_text())
    return doc


def test_bench_writes_a_result_file_and_a_chart(
    tether_server: RunningServer, tmp_path: Path
) -> None:
    doc = run_bench(tether_server, tmp_path, "tether")
    assert doc["model"] == DEFAULT_MODEL_ID
    assert doc["settings"] == {
        "concurrency": [1, 2],
        "rates": [],
        "requests": 4,
        "duration_s": 120.0,
        "prompt_tokens": 16,
        "max_tokens": 8,
        "extra_body": {},
        "response_format": None,
    }
    assert doc["prompt"]["method"] == "probe"
    assert abs(doc["prompt"]["measured_tokens"] - 16) <= 2
    assert doc["command"].startswith(f"tether bench --url {tether_server.url} --concurrency 1,2")
    assert [level["concurrency"] for level in doc["results"]] == [1, 2]
    for level in doc["results"]:
        assert (level["requests"], level["completed"], level["failed"]) == (4, 4, 0)
        assert level["output_tokens"] == 4 * 8  # ignore_eos: every answer is max_tokens long
        assert level["tokens_counted_by"] == "usage"
        assert level["output_tokens_per_s"] > 0 and level["requests_per_s"] > 0
        for metric in ("ttft_ms", "itl_ms", "latency_ms"):
            dist = level[metric]
            assert set(dist) == {"mean", "p50", "p90", "p99"}
            assert 0 < dist["p50"] <= dist["p90"] <= dist["p99"]
    assert (tmp_path / "bench-tether.png").read_bytes().startswith(PNG_MAGIC)


def test_bench_charts_several_result_files_together(
    tether_server: RunningServer, tmp_path: Path
) -> None:
    doc = run_bench(tether_server, tmp_path, "ours")
    (tmp_path / "theirs.json").write_text(json.dumps({**doc, "name": "theirs"}))
    result = tether(
        "bench",
        "--chart",
        str(tmp_path / "bench-ours.json"),
        str(tmp_path / "theirs.json"),
        "--out",
        str(tmp_path / "both"),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "both" / "bench-chart.png").read_bytes().startswith(PNG_MAGIC)


def test_bench_needs_a_url() -> None:
    result = tether("bench", "--requests", "1")
    assert result.returncode == 1
    assert "--url is required" in result.stderr


# -- client helpers --------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"])
def test_a_base_url_may_end_in_v1_or_not(url: str) -> None:
    assert base_url(url) == "http://h:1"


def test_sse_data_skips_comments_and_keeps_spaces_after_the_first() -> None:
    lines = [": keep-alive", "", "data: {}", "data:  x", "event: y", "data:[DONE]"]
    assert list(sse_data(lines)) == ["{}", " x", "[DONE]"]


def test_models_come_as_a_bare_array_or_an_openai_list() -> None:
    card = {"id": "m", "object": "model"}
    assert model_cards([card]) == model_cards({"object": "list", "data": [card]}) == [card]


def test_chat_and_completion_chunks_both_give_text() -> None:
    assert choice_text({"choices": [{"delta": {"content": "a"}, "text": "a"}]}) == "a"
    assert choice_text({"choices": [{"text": "b"}]}) == "b"
    assert choice_text({"choices": [], "usage": {}}) == ""
