"""llama-cpp-python's own OpenAI-compatible server, loading models as ``ModelRunner`` does.

It is the comparison peer of the README's "Other servers" benchmark
(``python -m tether.bench.llama_cpp_server``). As it ships, it loads models with llama.cpp's
extra buffer types on, which repacks weights for the AMX kernels; on the reference machine
those kernels crash the process on its first request (ARCHITECTURE.md, "AMX"). Here it gets
Tether's workaround and nothing else changed, so the comparison is like for like. Needs
``llama-cpp-python[server]``.
"""

from __future__ import annotations

import llama_cpp.llama_cpp as llama_cpp

from tether.engines.llamacpp.runner import model_params


def serve_llama_cpp_python() -> None:
    """Run llama-cpp-python's server on its own command line (``sys.argv``), every model
    loaded with ``model_params()`` (weight repacking off)."""
    # ``Llama`` reads its defaults through this module attribute each time it loads a model.
    llama_cpp.llama_model_default_params = model_params
    from llama_cpp.server.__main__ import main

    main()  # type: ignore[no-untyped-call]
