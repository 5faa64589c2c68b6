"""The ``tether serve`` flags: each one a ``ServerConfig`` field and a ``TETHER_*`` variable
(``--ctx-size`` ↔ ``TETHER_CTX_SIZE``), a flag on the command line winning over its variable;
``serve_config`` reads both into a ``ServerConfig``. ``--model`` and the repeatable
``--api-key``, ``--alias`` and ``--lora`` have their own rules (below)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.argtypes import json_object
from tether.config import DEFAULT_MODEL_ID, LOOPBACK, ServerConfig


@dataclass(frozen=True)
class Flag:
    """One ``serve`` flag: its config field, parser and help."""

    field: str
    kind: Callable[[str], Any]
    help: str

    @property
    def option(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return "TETHER_" + self.field.upper()


def _bool(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


SERVE_FLAGS = (
    Flag("host", str, f"address to bind (default {LOOPBACK}; see --api-key)"),
    Flag("port", int, "port to listen on (default 8000)"),
    Flag("model_id", str, f"the model name clients send (default {DEFAULT_MODEL_ID})"),
    Flag("models_dir", str, "serve every .gguf in this folder, named by its file stem"),
    Flag(
        "models_file",
        str,
        "TOML file of models, each with its own settings (README.md: Several models)",
    ),
    Flag("default_model", str, "the model of requests that name none (default: the only one)"),
    Flag("max_loaded_models", int, "models resident at once (default 0: no limit)"),
    Flag(
        "models_memory_gb",
        float,
        "memory the resident models may take, estimated from their GGUF and KV cache "
        "(default 0: what the machine has available)",
    ),
    Flag("model_ttl", float, "unload a model idle this many seconds (default 0: never)"),
    Flag("ctx_size", int, "context of one sequence, prompt + completion (default 4096)"),
    Flag("max_seqs", int, "sequences decoded at once (default 64, at most 256)"),
    Flag("max_queue", int, "requests that may wait for a slot before 503 (default 256)"),
    Flag("batch_tokens", int, "token budget of one engine step (default 512)"),
    Flag("prefill_chunk", int, "prompt tokens per step while others decode (default 256)"),
    Flag("threads", int, "llama.cpp threads (default: one per CPU core)"),
    Flag("kv_unified", _bool, "one KV buffer shared by all sequences (default false)"),
    Flag(
        "lenient_schemas",
        _bool,
        "accept JSON Schema keywords that cannot be enforced while generating (uniqueItems, "
        "not, ...) as advisory instead of refusing them with a 400 (default false)",
    ),
    Flag(
        "speculative",
        str,
        "speculative decoding on the llama.cpp engine: ngram (draft from the prompt and the "
        "answer so far, verify in the same step, where it measures ahead) or off "
        "(default ngram)",
    ),
    Flag("spec_max_draft", int, "most tokens a sequence drafts per step, 1-64 (default 32)"),
    Flag("log_level", str, "critical, error, warning, info or debug (default info)"),
    Flag("drain_timeout", float, "seconds running requests may finish after SIGTERM (default 30)"),
    Flag("rate_limit_rpm", int, "requests per minute per API key (default 0: no limit)"),
    Flag("rate_limit_tpm", int, "tokens per minute per API key (default 0: no limit)"),
    Flag("chat_template", str, "Jinja chat template file to use instead of the model's own"),
    Flag(
        "tool_call_parser",
        str,
        "the format the model writes tool calls in, by vLLM's name: hermes, qwen3_coder, "
        "llama3_json, deepseek_v31, openai, mistral, kimi_k2, glm45, minimax_m2, ... "
        "(default: detected from the chat template)",
    ),
    Flag(
        "reasoning_parser",
        str,
        "the model's reasoning markers, by vLLM's name: deepseek_r1, qwen3, mistral, "
        "seed_oss, ... (default: detected from the chat template)",
    ),
    Flag(
        "sampling_defaults",
        json_object,
        "JSON object of sampling fields for requests that leave them out "
        "(default: the model's own, else llama.cpp's)",
    ),
    Flag("state_db", str, "SQLite file of stored responses (default: the user data directory)"),
    Flag("no_store", _bool, "store no Responses API responses (default false)"),
    Flag("engine", str, "llamacpp (a GGUF, the default) or vllm (a Hugging Face model)"),
    Flag("max_model_len", int, "vLLM's name for --ctx-size (wins over it)"),
    Flag("tensor_parallel_size", int, "vLLM: GPUs (or CPU sockets) per model replica (default 1)"),
    Flag("pipeline_parallel_size", int, "vLLM: pipeline stages (default 1)"),
    Flag("distributed_executor_backend", str, "vLLM: mp (one node) or ray (several)"),
    Flag("gpu_memory_utilization", float, "vLLM: share of GPU memory to use (default vLLM's)"),
    Flag("dtype", str, "vLLM: weight dtype, e.g. bfloat16 (default auto)"),
    Flag("enforce_eager", _bool, "vLLM: no CUDA graphs / torch.compile (default false)"),
    Flag(
        "speculative_config",
        json_object,
        'vLLM: its speculative decoding settings as JSON, e.g. {"method": "ngram", '
        '"num_speculative_tokens": 4, "prompt_lookup_max": 4}',
    ),
    Flag("engine_args", json_object, "vLLM: JSON object of any other AsyncEngineArgs"),
)


def serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve a model over Together's HTTP API")
    for flag in SERVE_FLAGS:
        help = f"{flag.help} [{flag.env}]"
        if flag.kind is _bool:  # ``--no-store`` alone means true
            p.add_argument(
                flag.option, dest=flag.field, type=_bool, nargs="?", const=True, help=help
            )
            continue
        p.add_argument(flag.option, dest=flag.field, type=flag.kind, default=None, help=help)
    p.add_argument(
        "--model",
        dest="model",
        action="append",
        default=None,
        help="a GGUF model file, or NAME=PATH (repeatable: several models, loaded on demand) "
        "(default: the embedded Gemma 3 270M) [TETHER_MODEL]",
    )
    for option, env, what in _REPEATED:
        p.add_argument(
            f"--{option}",
            dest=_FIELDS[option],
            action="append",
            default=None,
            help=f"{what} (repeatable) [{env}, comma-separated]",
        )


# Repeatable ``serve`` options: (option, environment variable, help); each is a tuple
# field of ServerConfig (``--api-key`` fills ``api_keys``).
_REPEATED = (
    ("api-key", "TETHER_API_KEYS", "require this Bearer key"),
    ("alias", "TETHER_ALIASES", "ALIAS=NAME: another name clients may send for model NAME"),
    ("lora", "TETHER_LORAS", "NAME=PATH@BASE: a GGUF LoRA adapter on model BASE, as a model"),
)
_FIELDS = {"api-key": "api_keys", "alias": "aliases", "lora": "loras"}
# Every environment variable ``serve`` reads.
SERVE_ENV = frozenset(
    {flag.env for flag in SERVE_FLAGS} | {env for _, env, _ in _REPEATED} | {"TETHER_MODEL"}
)


def serve_config(args: argparse.Namespace, environ: dict[str, str]) -> ServerConfig:
    """Flags over ``TETHER_*`` variables over defaults."""
    values: dict[str, Any] = {}
    for flag in SERVE_FLAGS:
        value = getattr(args, flag.field, None)
        if value is None and flag.env in environ:
            value = flag.kind(environ[flag.env])
        if value is not None:
            values[flag.field] = value
    for option, env, _ in _REPEATED:
        given = getattr(args, _FIELDS[option], None)
        if given is None and environ.get(env):
            given = [item.strip() for item in environ[env].split(",") if item.strip()]
        if given:
            values[_FIELDS[option]] = tuple(given)
    models = getattr(args, "model", None)
    if models is None and environ.get("TETHER_MODEL"):
        models = [environ["TETHER_MODEL"]]
    values.update(_model_entries(models or [], values.get("model_id", DEFAULT_MODEL_ID)))
    return ServerConfig(**values)


def _model_entries(entries: list[str], model_id: str) -> dict[str, Any]:
    """``--model PATH`` (one model, as always) or ``--model NAME=PATH`` entries. A path
    among named entries is named by ``--model-id``."""
    named = [entry for entry in entries if _is_named(entry)]
    paths = [entry for entry in entries if not _is_named(entry)]
    if len(paths) > 1:
        raise ValueError("--model: give several models as NAME=PATH")
    if not named:
        return {"model_path": paths[0]} if paths else {}
    return {"models": tuple(named) + tuple(f"{model_id}={path}" for path in paths)}


def _is_named(entry: str) -> bool:
    """``NAME=PATH``, not a path that happens to hold ``=``."""
    name, eq, _ = entry.partition("=")
    return bool(eq) and "/" not in name and not os.path.exists(entry)
