"""Benchmarks: ``python -m tether.bench.engine`` (the engine next to raw llama.cpp),
``tether bench`` (HTTP load on any OpenAI-compatible server: ``cli`` → ``load`` → ``report``),
``tether bench schemas`` (JSON-schema coverage: ``corpus`` → ``schemas`` → ``schemas_cli``)
and ``python -m tether.bench.soak`` (a server's memory under refused and completed requests).
"""
