"""The inference engine: continuous batching over llama.cpp."""
