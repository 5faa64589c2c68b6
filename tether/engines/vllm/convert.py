"""``tether convert GGUF OUT_DIR``: a GGUF model as a Hugging Face folder (bfloat16
safetensors, config, tokenizer and chat template) that vLLM can load; vLLM has no CPU path
for GGUF files. Needs the ``convert`` extra (transformers, gguf, accelerate) and torch."""

from __future__ import annotations

from pathlib import Path


def convert(gguf: str, out_dir: str) -> Path:
    """Dequantize ``gguf`` and save it under ``out_dir``; return the folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    source = Path(gguf).expanduser().resolve()
    if not source.is_file():
        raise FileNotFoundError(f"no GGUF file at {gguf!r}")
    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # transformers' GGUF reader drops these flags; without BOS, Gemma answers garbage.
    for flag, value in gguf_token_flags(source).items():
        setattr(tokenizer, flag, value)
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),
    )
    # The weights are plain bfloat16 now; transformers refuses to save a model still marked
    # as GGUF-quantized ("not serializable").
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def gguf_token_flags(path: Path) -> dict[str, bool]:
    """``add_bos_token`` / ``add_eos_token`` as the GGUF's tokenizer metadata sets them."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    flags = {}
    for flag in ("add_bos_token", "add_eos_token"):
        field = reader.fields.get(f"tokenizer.ggml.{flag}")
        if field is not None and field.data:
            flags[flag] = bool(field.parts[field.data[0]][0])
    return flags
