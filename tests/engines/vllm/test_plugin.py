"""The vLLM plugin that takes sampled-token logprobs in float32: found by vLLM, inert unless
Tether's engine asks for it, and the same numbers as vLLM's own log-softmax. Runs in the
vLLM environment (``.venv-vllm``), in a child process."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from tests.conftest import VLLM_PYTHON, vllm_available

pytestmark = pytest.mark.skipif(
    not vllm_available(), reason="the vLLM engine is not built here: run `make vllm`"
)

CHECK = textwrap.dedent(
    """
    import os
    import torch
    from vllm.plugins import load_general_plugins
    from vllm.v1.sample.sampler import Sampler

    original = Sampler.compute_logprobs
    os.environ.pop("TETHER_VLLM_FAST_LOGPROBS", None)
    load_general_plugins()
    assert Sampler.compute_logprobs is original, "patched without being asked"

    from tether.engines.vllm import plugin
    os.environ["TETHER_VLLM_FAST_LOGPROBS"] = "1"
    plugin.register()
    plugin.register()  # twice is once
    assert Sampler.compute_logprobs is plugin.compute_logprobs

    torch.manual_seed(0)
    for dtype in (torch.bfloat16, torch.float32):
        logits = (torch.randn(5, 262144) * 4).to(dtype)
        ours = Sampler.compute_logprobs(logits)
        theirs = original(logits)
        assert ours.dtype == torch.float32
        assert torch.equal(ours, theirs), (ours - theirs).abs().max()
    print("ok")
    """
)


def test_the_plugin_is_registered_inert_by_default_and_exact() -> None:
    found = subprocess.run(
        [
            str(VLLM_PYTHON),
            "-c",
            "from importlib.metadata import entry_points as e;"
            "print([p.value for p in e(group='vllm.general_plugins')])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "tether.engines.vllm.plugin:register" in found.stdout, found.stderr[-2000:]
    done = subprocess.run(
        [str(VLLM_PYTHON), "-c", CHECK], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]
