"""``ModelRunner``: llama.cpp's model, context, batch and KV memory (its vocabulary is
``Vocab``'s, its sampler chains ``Sampler``'s).

Everything here runs on the engine thread. ctypes releases the GIL during each call, so a
``llama_decode`` never blocks the asyncio event loop.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp as llama
import numpy as np
import numpy.typing as npt

from tether.engine.errors import EngineError
from tether.engines.llamacpp.gguf_header import read_header
from tether.engines.llamacpp.vocab import Vocab

log = logging.getLogger(__name__)

_LLAMA_LOG_LEVELS = {3: logging.WARNING, 4: logging.ERROR}  # GGML_LOG_LEVEL_WARN / ERROR


@llama.llama_log_callback  # type: ignore[untyped-decorator]
def _llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    # llama.cpp prints hundreds of lines per model load; keep its errors and warnings only.
    if level in _LLAMA_LOG_LEVELS:
        log.log(_LLAMA_LOG_LEVELS[level], "llama.cpp: %s", text.decode(errors="replace").rstrip())


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """How to load the model and size the llama.cpp context."""

    model_path: str
    ctx_per_seq: int
    n_seq_max: int
    n_batch: int
    n_threads: int
    kv_unified: bool = False
    lora_path: str | None = None  # a LoRA adapter GGUF applied to this context
    lora_scale: float = 1.0


class _Batch:
    """A ``llama_batch`` whose arrays are numpy buffers, so filling it is slice assignment.

    Every token belongs to exactly one sequence, so ``seq_id[i]`` points at ``seq[i]``.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.token = np.zeros(capacity, np.int32)
        self.pos = np.zeros(capacity, np.int32)
        self.n_seq_id = np.ones(capacity, np.int32)
        self.seq = np.zeros(capacity, np.int32)
        self.logits = np.zeros(capacity, np.int8)
        self.n_tokens = 0
        self.n_outputs = 0
        int_p = ctypes.POINTER(ctypes.c_int32)
        base = self.seq.ctypes.data
        self._seq_ptrs = (int_p * capacity)(
            *[ctypes.cast(base + 4 * i, int_p) for i in range(capacity)]
        )
        self.struct = llama.llama_batch(
            n_tokens=0,
            token=self.token.ctypes.data_as(int_p),
            embd=None,
            pos=self.pos.ctypes.data_as(int_p),
            n_seq_id=self.n_seq_id.ctypes.data_as(int_p),
            seq_id=ctypes.cast(self._seq_ptrs, ctypes.POINTER(int_p)),
            logits=self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )

    def clear(self) -> None:
        self.n_tokens = 0
        self.n_outputs = 0

    def add(
        self,
        tokens: Sequence[int],
        start_pos: int,
        seq_id: int,
        logits_last: bool,
        logits_all: bool = False,
    ) -> int:
        """Append tokens of one sequence; return the batch index of the last one. Logits
        are asked for the last token, or for every token with ``logits_all``."""
        n, end = len(tokens), self.n_tokens + len(tokens)
        if end > self.capacity:
            raise EngineError(f"batch overflow: {end} > {self.capacity}")
        self.token[self.n_tokens : end] = tokens
        self.pos[self.n_tokens : end] = np.arange(start_pos, start_pos + n, dtype=np.int32)
        self.seq[self.n_tokens : end] = seq_id
        self.logits[self.n_tokens : end] = 0
        if logits_all:
            self.logits[self.n_tokens : end] = 1
            self.n_outputs += n
        elif logits_last:
            self.logits[end - 1] = 1
            self.n_outputs += 1
        self.n_tokens = end
        return end - 1


def model_params() -> llama.llama_model_params:
    """llama.cpp's default model parameters with weight repacking off.

    Repacking ("extra buffer types") routes matmuls to the AMX kernels, which crash with
    SIGSEGV/SIGILL on Intel CPUs with AMX (ARCHITECTURE.md, "AMX"); the speed is the same
    without.
    """
    params: llama.llama_model_params = llama.llama_model_default_params()
    params.use_extra_bufts = False
    return params


def check_lora(path: str) -> None:
    """Refuse, before llama.cpp sees it, an adapter that is not one, or one that adapts
    ``token_embd``: on a model whose output head is its embedding matrix (Gemma's), llama.cpp
    accepts it and then aborts the process at the first decode."""
    try:
        metadata, tensors = read_header(path)
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot read the LoRA adapter at {path!r}: {exc}") from exc
    if metadata.get("general.type") != "adapter" or metadata.get("adapter.type") != "lora":
        raise EngineError(f"{path!r} is not a LoRA adapter GGUF (general.type, adapter.type)")
    embedding = [name for name in tensors if name.startswith("token_embd.")]
    if embedding:
        raise EngineError(
            f"the LoRA adapter at {path!r} adapts the token embedding ({embedding[0]}), "
            "which llama.cpp cannot apply to a model with tied embeddings; leave it out"
        )


def system_info() -> str:
    """llama.cpp's build features as it reports them (``AVX512 = 1 | ... | OPENMP = 1``)."""
    return bytes(llama.llama_print_system_info()).decode(errors="replace").strip()


class ModelRunner:
    """Owns the llama.cpp model, context and batch; decodes, tokenizes and edits the KV cache."""

    def __init__(self, config: RunnerConfig) -> None:
        llama.llama_log_set(_llama_log, ctypes.c_void_p(0))
        llama.llama_backend_init()
        self.config = config
        self.model = self._load_model(config.model_path)
        self.vocab = Vocab(self.model)
        self.n_vocab = self.vocab.n_vocab
        self.n_swa = int(llama.llama_model_n_swa(self.model))
        # A recurrent state (Mamba, RWKV, hybrids) cannot drop its last positions.
        self.can_rollback = not (
            llama.llama_model_is_recurrent(self.model) or llama.llama_model_is_hybrid(self.model)
        )
        try:
            self.ctx = self._new_context(config)
        except BaseException:
            llama.llama_model_free(self.model)
            raise
        if config.lora_path is not None:
            self._apply_lora(config.lora_path, config.lora_scale)
        self.mem = llama.llama_get_memory(self.ctx)
        self.batch = _Batch(config.n_batch)
        self._logits_types: dict[int, type[ctypes.Array[ctypes.c_float]]] = {}
        self._closed = False

    @staticmethod
    def _load_model(path: str) -> llama.llama_model_p:
        params = model_params()
        model: llama.llama_model_p = llama.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise EngineError(f"llama.cpp could not load the model at {path!r}")
        return model

    def _new_context(self, config: RunnerConfig) -> llama.llama_context_p:
        params = llama.llama_context_default_params()
        # Each sequence gets ctx_per_seq cells: with per-sequence KV streams llama.cpp splits
        # n_ctx evenly across the n_seq_max streams (ARCHITECTURE.md has the measurements).
        params.n_ctx = config.ctx_per_seq * config.n_seq_max
        params.n_batch = config.n_batch
        params.n_ubatch = config.n_batch
        params.n_seq_max = config.n_seq_max
        params.n_threads = config.n_threads
        params.n_threads_batch = config.n_threads
        params.kv_unified = config.kv_unified
        params.swa_full = False
        params.no_perf = True
        ctx: llama.llama_context_p = llama.llama_init_from_model(self.model, params)
        if not ctx:
            raise EngineError("llama.cpp could not create a context (out of memory?)")
        return ctx

    def _apply_lora(self, path: str, scale: float) -> None:
        """Load a LoRA adapter onto the model and set it on this context (llama.cpp applies
        adapters per context: every sequence of this engine decodes with it). The model and
        context are freed when the adapter is refused."""
        try:
            check_lora(path)
            adapter = llama.llama_adapter_lora_init(self.model, str(path).encode())
            if not adapter:
                raise EngineError(f"llama.cpp could not load the LoRA adapter at {path!r}")
            adapters = (llama.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(scale)
            if llama.llama_set_adapters_lora(self.ctx, adapters, 1, scales) != 0:
                raise EngineError(f"llama.cpp could not apply the LoRA adapter at {path!r}")
        except BaseException:
            llama.llama_free(self.ctx)
            llama.llama_model_free(self.model)  # frees the adapter with it
            raise

    # -- decoding -------------------------------------------------------------------------

    def decode(self) -> None:
        """Run ``llama_decode`` on the batch built since ``batch.clear()``."""
        self.batch.struct.n_tokens = self.batch.n_tokens
        status = llama.llama_decode(self.ctx, self.batch.struct)
        if status != 0:
            raise EngineError(f"llama_decode failed with status {status}")

    def logits(self, n_outputs: int) -> npt.NDArray[np.float32]:
        """A zero-copy view of the last decode's logits, one row per output, in batch order.

        The view goes through a ctypes array type kept per row count: building one each
        step (``np.ctypeslib.as_array``) cost about 0.2 ms."""
        ptr = llama.llama_get_logits(self.ctx)
        kind = self._logits_types.get(n_outputs)
        if kind is None:
            kind = self._logits_types[n_outputs] = ctypes.c_float * (n_outputs * self.n_vocab)
        address = ctypes.cast(ptr, ctypes.c_void_p).value
        view = np.frombuffer(memoryview(kind.from_address(address or 0)), dtype=np.float32)
        return view.reshape(n_outputs, self.n_vocab)

    # -- KV memory ------------------------------------------------------------------------

    def seq_rm(self, seq_id: int, start: int = -1) -> bool:
        """Drop the sequence's cells from position ``start`` on (-1: all). False if refused."""
        return bool(llama.llama_memory_seq_rm(self.mem, seq_id, start, -1))

    def seq_cp(self, src: int, dst: int) -> None:
        """Give ``dst`` a copy of all of ``src``'s cells (a full copy across KV streams)."""
        llama.llama_memory_seq_cp(self.mem, src, dst, -1, -1)

    def seq_pos_min(self, seq_id: int) -> int:
        return int(llama.llama_memory_seq_pos_min(self.mem, seq_id))

    def chat_template(self) -> str | None:
        """The GGUF's ``tokenizer.chat_template``, if it has one."""
        return self.meta("tokenizer.chat_template")

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as text, or ``None`` when the model does not have it."""
        size = 1 << 16
        buf = ctypes.create_string_buffer(size)
        n = llama.llama_model_meta_val_str(self.model, key.encode(), buf, size)
        if n < 0:
            return None
        if n >= size:
            buf = ctypes.create_string_buffer(n + 1)
            llama.llama_model_meta_val_str(self.model, key.encode(), buf, n + 1)
        return buf.value.decode(errors="replace")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        llama.llama_free(self.ctx)
        llama.llama_model_free(self.model)
