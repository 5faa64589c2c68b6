"""GGUF files derived from the embedded model, for tests that need more than one model:
another quantization (``llama_model_quantize``, in the bindings), a copy under another
name, a corrupt file, and a small LoRA adapter (written with the ``gguf`` package); and the
same kind of adapter as a PEFT folder, for the vLLM engine (written with ``safetensors``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import llama_cpp
import numpy as np

from tether.engines.llamacpp.gguf import default_model_path

# Gemma 3 270M: (n_in, n_out) of the attention projections an adapter targets.
_GEMMA3_270M = {"attn_q": (640, 1024), "attn_v": (640, 256)}
_LAYERS = 18


def embedded() -> Path:
    return Path(default_model_path())


def copy_as(folder: Path, name: str) -> Path:
    """The embedded model under another file name."""
    path = folder / f"{name}.gguf"
    shutil.copyfile(embedded(), path)
    return path


def requantized(folder: Path, name: str = "gemma-q4_0") -> Path:
    """The embedded model requantized to Q4_0 (a different file, different weights)."""
    path = folder / f"{name}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    params.nthread = 2
    status = llama_cpp.llama_model_quantize(str(embedded()).encode(), str(path).encode(), params)
    assert status == 0, f"llama_model_quantize failed with {status}"
    return path


def corrupt(folder: Path, name: str = "corrupt") -> Path:
    """A file that starts like the model and is cut off in the middle of its tensors."""
    path = folder / f"{name}.gguf"
    with embedded().open("rb") as source:
        path.write_bytes(source.read(8 * 1024 * 1024))
    return path


def lora_adapter(
    folder: Path,
    name: str = "adapter",
    *,
    rank: int = 4,
    seed: int = 0,
    alpha: float = 4.0,
    std: float = 0.05,
    tensors: tuple[str, ...] = ("attn_q", "attn_v"),
    embedding: bool = False,
) -> Path:
    """A random rank-``rank`` LoRA adapter on every layer's ``tensors``: llama.cpp's layout
    (``<weight>.lora_a`` of numpy shape (r, n_in), ``.lora_b`` of (n_out, r))."""
    import gguf

    path = folder / f"{name}.gguf"
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for layer in range(_LAYERS):
        for tensor in tensors:
            n_in, n_out = _GEMMA3_270M[tensor]
            weight = f"blk.{layer}.{tensor}.weight"
            a = (rng.standard_normal((rank, n_in)) * std).astype(np.float32)
            b = (rng.standard_normal((n_out, rank)) * std).astype(np.float32)
            writer.add_tensor(f"{weight}.lora_a", a)
            writer.add_tensor(f"{weight}.lora_b", b)
    if embedding:
        writer.add_tensor("token_embd.weight.lora_a", np.zeros((262144, rank), np.float32))
        writer.add_tensor("token_embd.weight.lora_b", np.zeros((640, rank), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def peft_adapter(folder: Path, name: str = "peft-adapter", *, rank: int = 4, seed: int = 0) -> Path:
    """A random LoRA adapter in PEFT's layout for the converted model (Gemma3ForCausalLM):
    ``adapter_config.json`` and ``adapter_model.safetensors``, on q_proj and v_proj."""
    import json

    from safetensors.numpy import save_file

    path = folder / name
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(_LAYERS):
        for module, tensor in (("q_proj", "attn_q"), ("v_proj", "attn_v")):
            n_in, n_out = _GEMMA3_270M[tensor]
            key = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            a = (rng.standard_normal((rank, n_in)) * 0.05).astype(np.float32)
            b = (rng.standard_normal((n_out, rank)) * 0.05).astype(np.float32)
            tensors[f"{key}.lora_A.weight"] = a
            tensors[f"{key}.lora_B.weight"] = b
    save_file(tensors, str(path / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": rank,
        "target_modules": ["q_proj", "v_proj"],
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }
    (path / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    return path
