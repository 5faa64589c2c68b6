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
from typing import TYPE_CHECKING, Any

from tether.serve_flags import SERVE_ENV, SERVE_FLAGS, serve_config, serve_parser

if TYPE_CHECKING:
    from tether.client.api import Client

__all__ = ["SERVE_ENV", "SERVE_FLAGS", "main", "parser", "serve_config"]
log = logging.getLogger("tether")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    serve_parser(sub)
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
