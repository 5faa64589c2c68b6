"""The ``tether`` command line: ``serve`` (and, from the client side, ``chat``,
``complete``, ``models`` and ``bench``).

Every ``serve`` flag is also a ``TETHER_*`` environment variable (``--ctx-size`` ↔
``TETHER_CTX_SIZE``); a flag on the command line wins over the environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tether.config import DEFAULT_MODEL_ID, LOOPBACK, ServerConfig

log = logging.getLogger("tether")


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
    Flag("model", str, "path of a GGUF model file (default: the embedded Gemma 3 270M)"),
    Flag("model_id", str, f"the model name clients send (default {DEFAULT_MODEL_ID})"),
    Flag("ctx_size", int, "context of one sequence, prompt + completion (default 4096)"),
    Flag("max_seqs", int, "sequences decoded at once (default 64, at most 256)"),
    Flag("max_queue", int, "requests that may wait for a slot before 503 (default 256)"),
    Flag("batch_tokens", int, "token budget of one engine step (default 512)"),
    Flag("threads", int, "llama.cpp threads (default: one per CPU core)"),
    Flag("kv_unified", _bool, "one KV buffer shared by all sequences (default false)"),
    Flag("log_level", str, "critical, error, warning, info or debug (default info)"),
)


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve a model over Together's HTTP API")
    for flag in SERVE_FLAGS:
        p.add_argument(flag.option, dest=flag.field, type=flag.kind, default=None, help=f"{flag.help} [{flag.env}]")
    p.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        default=None,
        help="require this Bearer key (repeatable) [TETHER_API_KEYS, comma-separated]",
    )


def serve_config(args: argparse.Namespace, environ: dict[str, str]) -> ServerConfig:
    """Flags over ``TETHER_*`` variables over defaults."""
    values: dict[str, Any] = {}
    for flag in SERVE_FLAGS:
        value = getattr(args, flag.field)
        if value is None and flag.env in environ:
            value = flag.kind(environ[flag.env])
        if value is not None:
            values["model_path" if flag.field == "model" else flag.field] = value
    keys = args.api_keys
    if keys is None and environ.get("TETHER_API_KEYS"):
        keys = [k.strip() for k in environ["TETHER_API_KEYS"].split(",") if k.strip()]
    if keys:
        values["api_keys"] = tuple(keys)
    return ServerConfig(**values)


def serve(config: ServerConfig) -> None:
    import uvicorn

    from tether.api.app import create_app
    from tether.engine.async_engine import AsyncEngine

    engine = AsyncEngine(config)
    app = create_app(engine, config)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await engine.start()
        log.info(
            "tether: model %s (%s), context %d x %d sequences, http://%s:%d, auth %s",
            config.model_id,
            config.model_path or "embedded",
            config.ctx_size,
            config.max_seqs,
            config.host,
            config.port,
            "on" if config.auth_enabled else "off",
        )
        try:
            yield
        finally:
            await engine.stop()

    app.router.lifespan_context = lifespan
    if not config.auth_enabled:
        where = "loopback only" if config.host == LOOPBACK else f"{config.host}, OPEN TO ANYONE WHO CAN REACH IT"
        log.warning("no API key set (--api-key / TETHER_API_KEYS): serving without auth on %s", where)
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level, timeout_graceful_shutdown=5)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tether", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            config = serve_config(args, dict(os.environ))
        except (ValueError, argparse.ArgumentTypeError) as exc:
            parser.error(str(exc))
        logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        serve(config)
        return
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
