"""``Sampler``: one choice's sampling policy, run by llama.cpp's C sampler chain.

The chain never copies the 262,144-float logits row into Python. Log-probabilities are read
from a zero-copy numpy view of the same row. Constrained choices (a ``Guide``: llguidance)
follow llama.cpp's ``common_sampler``: sample unconstrained first, ask the grammar about that
one token, and only when it is refused compute the grammar's mask over the whole vocabulary
and sample again from what it allows. That is exact for greedy decoding and, with plain
temperature sampling, the same distribution as masking first. When the grammar allows no
token at all (it is complete and ``ignore_eos`` forbids the end token), ``sample`` returns
``None`` and the choice ends (issue 9).

Every C object a ``Sampler`` owns is counted in ``live_samplers()`` until ``close()``, and
every grammar matcher too, so a leak shows up as a number (``EngineStats.live_samplers``).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterable

import llama_cpp as llama
import numpy as np
import numpy.typing as npt

from tether.engine.sampling_params import SamplingParams
from tether.engines.llamacpp.counters import Counter
from tether.engines.llamacpp.guide import Guide, live_matchers

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
# Outside this range a float32 sum of exps has lost precision (or overflowed).
_SUM_LOW, _SUM_HIGH = 1e-30, 1e30

_live = Counter()
_grammars_ended = Counter()


def live_samplers() -> int:
    """How many llama.cpp sampler chains and grammar matchers are alive in this process."""
    return _live.value + live_matchers()


def grammars_ended() -> int:
    """How many constrained choices have ended so far: each may have left memory free in
    its thread's C heap (``heap.HeapTrimmer``)."""
    return _grammars_ended.value


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
    """Samples one choice's tokens with a llama.cpp sampler chain built from its params,
    within what its ``Guide`` allows when it has one.

    Chain order (llama.cpp's default): logit bias → penalties → top-k → top-p → min-p →
    temperature → dist(seed); or greedy when ``temperature == 0``. The RNG is per choice,
    so a seed gives the same tokens whatever else shares the batch.
    """

    def __init__(
        self,
        params: SamplingParams,
        guide: Guide | None,
        seed: int,
        n_vocab: int,
        eog_ids: Iterable[int],
    ) -> None:
        self._n_vocab = n_vocab
        self._candidates: npt.NDArray[np.void] | None = None
        self._scratch: npt.NDArray[np.float32] | None = None
        # Plain greedy is an argmax over the zero-copy row: ~40 µs instead of the ~0.5 ms
        # the C chain spends building a 262,144-entry candidate array per token.
        self._argmax = params.greedy and self._is_plain(params)
        self._banned = frozenset(eog_ids) if params.ignore_eos else frozenset()
        self._eog = frozenset(eog_ids)
        self._guide = guide
        self._started = False
        self.forced: list[int] = []  # tokens the grammar forces after the last one sampled
        self._chain: llama.llama_sampler_p | None = llama.llama_sampler_chain_init(
            llama.llama_sampler_chain_default_params()
        )
        _live.add(1)
        try:
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
    def _free(sampler: llama.llama_sampler_p) -> None:
        llama.llama_sampler_free(sampler)
        _live.add(-1)

    def sample(
        self, ctx: llama.llama_context_p, batch_index: int, row: npt.NDArray[np.float32]
    ) -> int | None:
        """Sample the next token from the logits at ``batch_index`` (``row`` is that row).

        ``None`` means the grammar allows no further token: the choice is complete. After a
        token, ``forced`` holds the tokens the grammar forces next (already accepted).
        """
        guide = self._guide
        if guide is None:
            if self._argmax:
                best = int(row.argmax())
                if best not in self._banned:
                    return best
                # ignore_eos and an end token won: the chain's logit bias rules it out.
            return int(llama.llama_sampler_sample(self._chain, ctx, batch_index))
        if not self._started:
            self._started = True
            forced = guide.forced()
            if forced:  # the grammar's first tokens are forced: nothing to sample
                return self._accept(forced[0])
        token = self._pick(row, None)
        if token is None or token in self._banned or not guide.allows(token):
            allowed = guide.allowed(self._banned)
            if not allowed.any():
                return None
            token = self._pick(row, allowed)
            if token is None or not allowed[token]:
                return None
        return self._accept(token)

    def _pick(
        self, row: npt.NDArray[np.float32], allowed: npt.NDArray[np.bool_] | None
    ) -> int | None:
        """The chain's choice over the row, among ``allowed`` tokens if given."""
        if self._argmax:
            if allowed is None:
                return int(row.argmax())
            scratch = self._scratch
            if scratch is None:
                scratch = self._scratch = np.empty(self._n_vocab, np.float32)
            scratch.fill(-np.inf)
            np.copyto(scratch, row, where=allowed)
            return int(scratch.argmax())
        return self._apply_chain(row, allowed)

    def _accept(self, token: int) -> int:
        """Tell the chain (penalties) and the grammar; collect the tokens forced next."""
        llama.llama_sampler_accept(self._chain, token)
        self.forced = []
        guide = self._guide
        if guide is not None and token not in self._eog:
            guide.accept([token])
            if not guide.complete:
                self.forced = guide.forced()
                if self.forced:
                    guide.accept(self.forced)
                    for forced in self.forced:
                        llama.llama_sampler_accept(self._chain, forced)
        return token

    @property
    def complete(self) -> bool:
        """The grammar is complete: the choice can only end."""
        return self._guide is not None and self._guide.complete

    def _apply_chain(
        self, row: npt.NDArray[np.float32], allowed: npt.NDArray[np.bool_] | None
    ) -> int | None:
        """The chain's choice over the whole row, restricted to ``allowed`` tokens if given;
        ``None`` when nothing may be sampled."""
        cands = self._candidates
        if cands is None:
            cands = self._candidates = np.zeros(self._n_vocab, _TOKEN_DATA)
        cands["id"] = np.arange(self._n_vocab, dtype=np.int32)
        cands["logit"] = row
        cands["p"] = 0.0
        if allowed is not None:
            logits = cands["logit"]
            np.copyto(logits, -np.inf, where=~allowed)
            cands["logit"] = logits
        arr = llama.llama_token_data_array(
            data=cands.ctypes.data_as(llama.llama_token_data_p),
            size=self._n_vocab,
            selected=-1,
            sorted=False,
        )
        llama.llama_sampler_apply(self._chain, ctypes.byref(arr))
        if not 0 <= arr.selected < arr.size:
            return None
        # Samplers may move ``data`` to a sorted copy; read the winner through the array.
        return int(arr.data[arr.selected].id)

    def close(self) -> None:
        """Free the C objects (idempotent)."""
        if self._chain:
            self._free(self._chain)
            self._chain = None
        if self._guide is not None:
            self._guide.close()
            self._guide = None
            _grammars_ended.add(1)
