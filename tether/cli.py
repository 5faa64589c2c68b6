"""The ``tether`` command line.

    tether serve                          serve a model over Together's HTTP API
    tether chat [--url URL]               chat in the terminal, streaming
    tether complete [--url URL] PROMPT    stream a completion to stdout
    tether models [--url URL]             list what a server serves
    tether bench --url URL                load-test any OpenAI-compatible server

Every ``serve`` flag is also a ``TETHER_*`` environment variable (``--ctx-size`` ↔
``TETHER_CTX_SIZE``); a flag on the command line wins over the environment. ``chat``,
``complete`` and ``models`` talk to ``--url`` (``TETHER_URL``); without one they start the
server inside the command, configured by the same ``TETHER_*`` variables as ``serve``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.argtypes import json_object
from tether.config import DEFAULT_MODEL_ID, LOOPBACK, ServerConfig

if TYPE_CHECKING:
    from tether.client.api import Client

log = logging.getLogger("tether")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    Flag("engine_args", json_object, "vLLM: JSON object of any other AsyncEngineArgs"),
)


# -- serve -----------------------------------------------------------------------------


def _serve_parser(sub: Any) -> None:
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


# -- chat, complete, models ------------------------------------------------------------


def _client_parser(sub: Any, name: str, help: str, generates: bool) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
    p.add_argument(
        "--url",
        default=os.environ.get("TETHER_URL"),
        help="base URL of a running server, with or without /v1 [TETHER_URL] "
        "(default: start one in this process, configured by the TETHER_* variables)",
    )
    p.add_argument(
        "--api-key", default=os.environ.get("TETHER_API_KEY"), help="Bearer key [TETHER_API_KEY]"
    )
    if generates:
        p.add_argument("--model", help="model to ask for (default: the first the server lists)")
        p.add_argument("--temperature", type=float, help="sampling temperature (server default)")
    return p


def _client_parsers(sub: Any) -> None:
    chat = _client_parser(sub, "chat", "chat with the model in the terminal, streaming", True)
    chat.add_argument("--system", help="a system prompt to start the conversation with")
    chat.add_argument("--max-tokens", type=int, default=512, help="per answer (default 512)")
    complete = _client_parser(sub, "complete", "stream a completion of PROMPT to stdout", True)
    complete.add_argument("--max-tokens", type=int, default=128, help="(default 128)")
    complete.add_argument("--json", action="store_true", help="print the raw chunks, one a line")
    complete.add_argument("prompt", help="the text to continue")
    models = _client_parser(sub, "models", "list the models a server serves", False)
    models.add_argument("--json", action="store_true", help="print the server's model cards")


@contextmanager
def _connect(args: argparse.Namespace) -> Iterator[Client]:
    """A client for ``--url``, or for a server started here when there is none."""
    from tether.client.api import Client, ClientError
    from tether.client.local import LocalServer

    if args.url:
        with Client(args.url, args.api_key) as client:
            yield client
        return
    try:
        # One user at a time: 4 sequences, not serve's 64, keep the KV cache (and startup) small.
        config = serve_config(argparse.Namespace(), {"TETHER_MAX_SEQS": "4", **os.environ})
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ClientError(f"bad TETHER_* setting for the in-process server: {exc}") from exc
    key = args.api_key or (config.api_keys[0] if config.api_keys else None)
    with LocalServer(config) as url, Client(url, key) as client:
        yield client


def _chat(args: argparse.Namespace) -> None:
    from tether.client.chat import ChatSession, run_chat

    interactive = sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (gives input() line editing and history)
    with _connect(args) as client:
        session = ChatSession(
            client,
            args.model or client.default_model(),
            system=args.system,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
        )
        run_chat(session, lambda: input("you> " if interactive else ""), interactive)


def _complete(args: argparse.Namespace) -> None:
    from tether.client.api import choice_text

    with _connect(args) as client:
        body: dict[str, Any] = {
            "model": args.model or client.default_model(),
            "prompt": args.prompt,
            "max_tokens": args.max_tokens,
            "stream": True,
        }
        if args.temperature is not None:
            body["temperature"] = args.temperature
        for data in client.stream_data("/completions", body):
            _write(data + "\n" if args.json else choice_text(json.loads(data)))
        if not args.json:
            _write("\n")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _models(args: argparse.Namespace) -> None:
    with _connect(args) as client:
        cards = client.models()
    if args.json:
        print(json.dumps(cards, indent=2))
        return
    for card in cards:
        context = card.get("context_length")
        print(f"{card['id']}  context {context}" if context else card["id"])


# -- bench -----------------------------------------------------------------------------


def _bench_parser(sub: Any) -> None:
    from tether.bench.cli import add_arguments

    p = sub.add_parser(
        "bench",
        help="load-test an OpenAI-compatible server (Tether, llama.cpp, vLLM)",
        description="Load-test an OpenAI-compatible server: a concurrency sweep of streamed "
        "completions of fixed prompt and output lengths. Traffic goes only to --url.",
    )
    add_arguments(p)


def _bench(args: argparse.Namespace) -> None:
    from tether.bench.cli import run_command

    run_command(args)


# -- convert ---------------------------------------------------------------------------


def _convert_parser(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="turn a GGUF into a Hugging Face folder for --engine vllm",
        description="Dequantize a GGUF model into a Hugging Face folder (bfloat16) that "
        "vLLM can load (vLLM has no CPU path for GGUF). Needs the 'convert' extra.",
    )
    p.add_argument("gguf", help="the GGUF file, or 'embedded' for the default model")
    p.add_argument("out_dir", help="the folder to write")


def _convert(args: argparse.Namespace) -> None:
    from tether.engines.llamacpp.gguf import default_model_path
    from tether.engines.vllm.convert import convert

    source = default_model_path() if args.gguf == "embedded" else args.gguf
    out = convert(source, args.out_dir)
    print(f"converted {source} -> {out}")


# -- main ------------------------------------------------------------------------------


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "chat": _chat,
    "complete": _complete,
    "models": _models,
    "bench": _bench,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tether",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _client_parsers(sub)
    _bench_parser(sub)
    _convert_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process's exit status."""
    cli = parser()
    args = cli.parse_args(argv)
    if args.command == "serve":
        try:
            config = serve_config(args, dict(os.environ))
            from tether.pool.spec import model_table

            model_table(config)  # names, aliases, files: a usage error, before any load
        except (ValueError, argparse.ArgumentTypeError) as exc:
            cli.error(str(exc))
        logging.basicConfig(level=config.log_level.upper(), format=LOG_FORMAT)
        from tether.server import serve

        serve(config)
        return 0
    if args.command == "convert":
        _convert(args)
        return 0
    return _run_client(COMMANDS[args.command], args)


def _run_client(command: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    from tether.client.api import ClientError

    # The in-process server's own chatter (model loading, startup) would garble the chat.
    logging.basicConfig(level=logging.ERROR, format=LOG_FORMAT)
    try:
        command(args)
    except ClientError as exc:
        print(f"tether {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tether complete ... | head` closed our stdout: not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
