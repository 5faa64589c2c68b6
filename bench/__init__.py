"""Benchmarks: ``python -m bench.engine`` (the engine next to raw llama.cpp) and ``tether bench``
(HTTP load on any OpenAI-compatible server: ``bench.cli`` → ``bench.load`` → ``bench.report``).
"""
