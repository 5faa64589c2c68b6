"""The llama.cpp engine: continuous batching over llama-cpp-python's low-level API.

The only package that imports ``llama_cpp`` (``tests/test_layout.py`` checks it).
"""
