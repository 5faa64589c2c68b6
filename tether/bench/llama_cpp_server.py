"""Run llama-cpp-python's own OpenAI-compatible server with weight repacking off.

    python -m tether.bench.llama_cpp_server --model MODEL.gguf --n_threads 2 --port 8001 ...

llama-cpp-python's server loads models with llama.cpp's extra buffer types on, which
repacks weights for the AMX kernels; on the reference machine those kernels crash the
process on its first request (ARCHITECTURE.md, "AMX"). This launcher applies the same workaround
Tether uses (``use_extra_bufts = False``, same speed) and then runs the server unchanged,
so the comparison in the README is like for like. Needs ``llama-cpp-python[server]``.
"""

from __future__ import annotations

from typing import Any

import llama_cpp.llama_cpp as llama_cpp

_default_params = llama_cpp.llama_model_default_params


def _params_without_repacking() -> Any:
    params = _default_params()
    params.use_extra_bufts = False
    return params


def main() -> None:
    llama_cpp.llama_model_default_params = _params_without_repacking
    from llama_cpp.server.__main__ import main as serve

    serve()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
