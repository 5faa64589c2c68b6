"""Benchmarks: ``python -m bench.engine`` (engine vs raw llama.cpp) and ``tether bench`` (HTTP load)."""
