"""Run llama-cpp-python's own OpenAI-compatible server with weight repacking off.

    python -m tether.bench.llama_cpp_server --model MODEL.gguf --n_threads 2 --port 8001 ...

The README's comparison peer: the server unchanged but for Tether's AMX workaround
(``use_extra_bufts = False``, same speed), so the comparison is like for like. The patch is
``engines/llamacpp/python_server.py``'s, the package that alone imports ``llama_cpp``.
Needs ``llama-cpp-python[server]``.
"""

from __future__ import annotations

from tether.engines.llamacpp.python_server import serve_llama_cpp_python

if __name__ == "__main__":
    serve_llama_cpp_python()
