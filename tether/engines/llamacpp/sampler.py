"""``Sampler``: one choice's sampling policy, run by llama.cpp's C sampler chain.

The chain never copies the 262,144-float logits row into Python. Log-probabilities are read
from a zero-copy numpy view of the same row. Grammar-constrained choices follow llama.cpp's
``common_sampler``: sample unconstrained first, check that one token against the grammar,
and only when it is rejected pay for applying the grammar to the whole vocabulary.

llama.cpp throws a C++ exception (which ends the process: nothing catches it across the C
API) when a grammar is told to accept a token it does not allow. So a token reaches
``llama_sampler_accept`` on the grammar only after the grammar said yes to it; when it allows
no token at all (it is complete and ``ignore_eos`` forbids the end token), ``sample`` returns
``None`` and the choice ends (issue 9).

Every C object a ``Sampler`` owns is counted in ``live_samplers()`` until ``close()``, so a
leak shows up as a number (``EngineStats.live_samplers``).
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Iterable

import llama_cpp as llama
import numpy as np
import numpy.typing as npt

from tether.engine.errors import StructuredOutputError
from tether.engine.sampling_params import SamplingParams
from tether.engine.structured import LazyCalls
from tether.engines.llamacpp import gbnf

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
# Outside this range a float32 sum of exps has lost precision (or overflowed).
_SUM_LOW, _SUM_HIGH = 1e-30, 1e30

_live_lock = threading.Lock()
_live = 0
_grammars_ended = 0


def _count(delta: int) -> None:
    global _live
    with _live_lock:
        _live += delta


def live_samplers() -> int:
    """How many llama.cpp samplers (chains and grammars) are allocated in this process."""
    return _live


def grammars_ended() -> int:
    """How many grammar-constrained choices have freed their grammar so far: each may have
    left tens of MB free in its thread's C heap (``heap.HeapTrimmer``)."""
    return _grammars_ended


def check_grammar(grammar: str, vocab: llama.llama_vocab_p) -> None:
    """Raise ``StructuredOutputError`` unless llama.cpp parses ``grammar`` (allocates nothing
    that outlives the call)."""
    Sampler._free(Sampler._new_grammar(grammar, vocab))


# Floats per pass of ``logsumexp``: 128 KB, so each chunk's exps are summed while they are
# still in the core's cache instead of going through a 1 MB scratch row in memory.
_LSE_CHUNK = 32768


def logsumexp(row: npt.NDArray[np.float32], scratch: npt.NDArray[np.float32]) -> float:
    """log(sum(exp(row))) of one logits row, without allocating.  row: [n_vocab]; scratch:
    any float32 buffer (``_LSE_CHUNK`` floats are enough)

    Logits are small numbers, so the usual shift by the row's maximum is skipped: one exp
    pass and one sum, chunk by chunk. Only when that sum leaves float32's comfortable range
    does it redo the row shifted. Measured in the engine at one stream (Intel Xeon, 2
    cores): 0.49 ms a row through a whole-row scratch, 0.3 ms in chunks.
    """
    step = min(_LSE_CHUNK, scratch.shape[0])
    total = 0.0
    with np.errstate(over="ignore", under="ignore"):
        for start in range(0, row.shape[0], step):
            part = row[start : start + step]
            out = scratch[: part.shape[0]]
            np.exp(part, out=out)
            total += float(out.sum())
    if _SUM_LOW < total < _SUM_HIGH:
        return math.log(total)
    peak = float(row.max())
    total = 0.0
    for start in range(0, row.shape[0], step):
        part = row[start : start + step]
        out = scratch[: part.shape[0]]
        np.subtract(part, peak, out=out)
        np.exp(out, out=out)
        total += float(out.sum(dtype=np.float64))
    return peak + math.log(total)


def top_logprobs(row: npt.NDArray[np.float32], lse: float, k: int) -> list[tuple[int, float]]:
    """The k most likely tokens of one row with their logprobs, best first.  row: [n_vocab]"""
    if k <= 0:
        return []
    ids = np.argpartition(row, -k)[-k:]
    ids = ids[np.argsort(row[ids])[::-1]]
    return [(int(i), float(row[i]) - lse) for i in ids]


class Sampler:
    """Samples one choice's tokens with a llama.cpp sampler chain built from its params.

    Chain order (llama.cpp's default): logit bias → penalties → top-k → top-p → min-p →
    temperature → dist(seed); or greedy when ``temperature == 0``. The RNG is per choice,
    so a seed gives the same tokens whatever else shares the batch.
    """

    def __init__(
        self,
        params: SamplingParams,
        grammar: str | None,
        seed: int,
        vocab: llama.llama_vocab_p,
        n_vocab: int,
        eog_ids: Iterable[int],
    ) -> None:
        self._n_vocab = n_vocab
        self._candidates: npt.NDArray[np.void] | None = None
        # Plain greedy is an argmax over the zero-copy row: ~40 µs instead of the ~0.5 ms
        # the C chain spends building a 262,144-entry candidate array per token.
        self._argmax = params.greedy and not grammar and self._is_plain(params)
        self._banned = frozenset(eog_ids) if params.ignore_eos else frozenset()
        self._grammar: llama.llama_sampler_p | None = None
        self._chain: llama.llama_sampler_p | None = llama.llama_sampler_chain_init(
            llama.llama_sampler_chain_default_params()
        )
        _count(1)
        try:
            if grammar:
                lazy = params.structured.lazy_calls if params.structured is not None else None
                self._grammar = self._new_grammar(grammar, vocab, lazy)
            self._add_bias(params, n_vocab, eog_ids)
            self._add_penalties(params, n_vocab)
            self._add_selection(params, seed)
        except BaseException:
            self.close()  # nothing half-built may outlive a failed construction
            raise

    @staticmethod
    def _is_plain(params: SamplingParams) -> bool:
        return not params.logit_bias and (
            params.repetition_penalty,
            params.frequency_penalty,
            params.presence_penalty,
        ) == (1.0, 0.0, 0.0)

    def _add(self, sampler: llama.llama_sampler_p) -> None:
        llama.llama_sampler_chain_add(self._chain, sampler)

    def _add_bias(self, params: SamplingParams, n_vocab: int, eog_ids: Iterable[int]) -> None:
        bias = {t: b for t, b in params.logit_bias.items() if 0 <= t < n_vocab}
        if params.ignore_eos:
            # As llama.cpp's server does for ignore_eos: end-of-generation tokens can't win.
            bias.update(dict.fromkeys(eog_ids, float("-inf")))
        if not bias:
            return
        arr = (llama.llama_logit_bias * len(bias))(
            *[llama.llama_logit_bias(token=t, bias=b) for t, b in bias.items()]
        )
        self._add(llama.llama_sampler_init_logit_bias(n_vocab, len(bias), arr))

    def _add_penalties(self, params: SamplingParams, n_vocab: int) -> None:
        if (params.repetition_penalty, params.frequency_penalty, params.presence_penalty) == (
            1.0,
            0.0,
            0.0,
        ):
            return
        # OpenAI's presence/frequency penalties count every generated token, so the window
        # covers the whole completion.
        self._add(
            llama.llama_sampler_init_penalties(
                n_vocab,
                params.max_tokens,
                params.repetition_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            )
        )

    def _add_selection(self, params: SamplingParams, seed: int) -> None:
        if params.greedy:
            self._add(llama.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            self._add(llama.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            self._add(llama.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            self._add(llama.llama_sampler_init_min_p(params.min_p, 1))
        self._add(llama.llama_sampler_init_temp(params.temperature))
        self._add(llama.llama_sampler_init_dist(seed))

    @staticmethod
    def _new_grammar(
        grammar: str, vocab: llama.llama_vocab_p, lazy: LazyCalls | None = None
    ) -> llama.llama_sampler_p:
        """The grammar's sampler; with ``lazy``, one that lets everything through until the
        model writes a trigger, then constrains from the trigger on (llama.cpp's lazy
        grammar, as its server does for tool calls)."""
        if lazy is None:
            sampler: llama.llama_sampler_p = llama.llama_sampler_init_grammar(
                vocab, grammar.encode(), b"root"
            )
        else:
            patterns = [pattern.encode() for pattern in gbnf.trigger_patterns(lazy)]
            array = (ctypes.c_char_p * len(patterns))(*patterns)
            sampler = llama.llama_sampler_init_grammar_lazy_patterns(
                vocab, grammar.encode(), b"root", array, len(patterns), None, 0
            )
        if not sampler:
            raise StructuredOutputError("llama.cpp could not parse the grammar built for it")
        _count(1)
        return sampler

    @staticmethod
    def _free(sampler: llama.llama_sampler_p) -> None:
        llama.llama_sampler_free(sampler)
        _count(-1)

    def sample(
        self, ctx: llama.llama_context_p, batch_index: int, row: npt.NDArray[np.float32]
    ) -> int | None:
        """Sample the next token from the logits at ``batch_index`` (``row`` is that row).

        ``None`` means the grammar allows no further token: the choice is complete.
        """
        if self._argmax:
            best = int(row.argmax())
            if best not in self._banned:
                return best
            # ignore_eos and an end token won: the chain's logit bias rules it out.
        if self._grammar is None:
            return int(llama.llama_sampler_sample(self._chain, ctx, batch_index))
        token: int | None = self._apply_chain(row, with_grammar=False)
        if token is None or not self._grammar_accepts(token):
            token = self._apply_chain(row, with_grammar=True)
            if token is None or token in self._banned or not self._grammar_accepts(token):
                return None
        llama.llama_sampler_accept(self._grammar, token)
        llama.llama_sampler_accept(self._chain, token)
        return token

    def _apply_chain(self, row: npt.NDArray[np.float32], with_grammar: bool) -> int | None:
        """The chain's choice over the whole row, restricted to the grammar if asked;
        ``None`` when the grammar leaves no token that may be sampled."""
        cands = self._candidates
        if cands is None:
            cands = self._candidates = np.zeros(self._n_vocab, _TOKEN_DATA)
        cands["id"] = np.arange(self._n_vocab, dtype=np.int32)
        cands["logit"] = row
        cands["p"] = 0.0
        arr = llama.llama_token_data_array(
            data=cands.ctypes.data_as(llama.llama_token_data_p),
            size=self._n_vocab,
            selected=-1,
            sorted=False,
        )
        if with_grammar:
            llama.llama_sampler_apply(self._grammar, ctypes.byref(arr))
            if not self._any_allowed(cands["logit"]):
                return None
        llama.llama_sampler_apply(self._chain, ctypes.byref(arr))
        if not 0 <= arr.selected < arr.size:
            return None
        # Samplers may move ``data`` to a sorted copy; read the winner through the array.
        return int(arr.data[arr.selected].id)

    def _any_allowed(self, logits: npt.NDArray[np.float32]) -> bool:
        """Whether a token the grammar allows is left once ``ignore_eos`` bans the end tokens."""
        allowed = np.isfinite(logits)
        for token in self._banned:
            allowed[token] = False
        return bool(allowed.any())

    def _grammar_accepts(self, token: int) -> bool:
        one = llama.llama_token_data(id=token, logit=1.0, p=0.0)
        arr = llama.llama_token_data_array(
            data=ctypes.pointer(one), size=1, selected=-1, sorted=False
        )
        llama.llama_sampler_apply(self._grammar, ctypes.byref(arr))
        return bool(np.isfinite(arr.data[0].logit))

    def close(self) -> None:
        """Free the C objects (idempotent)."""
        if self._chain:
            self._free(self._chain)
            self._chain = None
        if self._grammar:
            self._free(self._grammar)
            self._grammar = None
            global _grammars_ended
            with _live_lock:
                _grammars_ended += 1
