"""llguidance on the llama.cpp engine: the model's vocabulary as llguidance reads it, and
``Guide``, one choice's grammar matcher.

``GuidanceVocab`` builds llguidance's tokenizer from the llama.cpp vocabulary (about 2 s for
Gemma's 262,144 tokens) on a thread of its own, started when the model loads; the first
constrained request waits for it. ``Constraints`` compiles a ``StructuredOutput`` once
(``tether.engine.guidance``), checks it and keeps a matcher at its start state; each choice
then gets a copy of it.

A ``Guide`` answers what the sampler asks: does the grammar allow this one token (the
sampler asks first about the token it would pick anyway, as llama.cpp's ``common_sampler``
does), which tokens does it allow (a bitmask, only when the first answer is no), and, once a
token is accepted, which tokens the grammar forces next (llguidance's fast-forward tokens,
e.g. ``", "story": "`` between two fields), which the engine decodes without sampling.

Every live matcher is counted in ``live_matchers()``: a leak shows up as a number.
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
from collections.abc import Iterable

import llama_cpp as llama
import llguidance
import numpy as np
import numpy.typing as npt

from tether.engine.errors import EngineError, StructuredOutputError
from tether.engine.guidance import GuidanceOptions, check, compile_grammar
from tether.engine.structured import StructuredOutput
from tether.engines.llamacpp.counters import Counter
from tether.engines.llamacpp.vocab import Vocab

log = logging.getLogger(__name__)

_CACHE = 64  # compiled constraints remembered: clients send the same few again and again

_live = Counter()


def live_matchers() -> int:
    """How many choices' grammar matchers are alive in this process."""
    return _live.value


class GuidanceVocab:
    """llguidance's tokenizer for a llama.cpp vocabulary, built in the background."""

    def __init__(self, vocab: Vocab) -> None:
        self._vocab = vocab
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._error: BaseException | None = None
        self._built = threading.Event()
        self._markup: dict[str, str] = {}
        threading.Thread(target=self._build, name="tether-guidance-vocab", daemon=True).start()

    def _build(self) -> None:
        try:
            self._tokenizer = _tokenizer(self._vocab)
        except BaseException as exc:  # reported to every constrained request
            log.exception("llguidance could not read the model's vocabulary")
            self._error = exc
        finally:
            self._built.set()

    def wait_built(self) -> None:
        """Until the background read of the vocabulary is over (before the model is freed)."""
        self._built.wait()

    @property
    def tokenizer(self) -> llguidance.LLTokenizer:
        self._built.wait()
        if self._tokenizer is None:
            raise EngineError(f"llguidance could not read the vocabulary: {self._error}")
        return self._tokenizer

    def markup(self, text: str) -> str:
        """``text`` as a Lark expression: literal text, except that a special token the
        model writes as one token (``<tool_call>``, ``<|channel|>``) is matched by its id."""
        known = self._markup.get(text)
        if known is not None:
            return known
        tokenizer = self.tokenizer
        parts: list[str] = []
        rest = text
        for token in self._vocab.tokenize(text, add_special=False):
            spelled = self._vocab.text(token)
            at = rest.find(spelled) if tokenizer.is_special_token(token) else -1
            if at < 0:
                continue
            if at:
                parts.append(json.dumps(rest[:at]))
            parts.append(f"<[{token}]>")
            rest = rest[at + len(spelled) :]
        if rest:
            parts.append(json.dumps(rest))
        expression = self._markup[text] = " ".join(parts)
        return expression


def _tokenizer(vocab: Vocab) -> llguidance.LLTokenizer:
    """llguidance's tokenizer for the vocabulary, as ``llguidance.llamacpp`` builds it (which
    calls a function llama-cpp-python now refuses as deprecated): each token's text, control
    tokens (and ``<...>`` user-defined ones) marked special by a leading 0xFF byte, and
    llama.cpp's own tokenizer for the text llguidance must tokenize."""
    control = llama.LLAMA_TOKEN_ATTR_CONTROL
    user_defined = llama.LLAMA_TOKEN_ATTR_USER_DEFINED
    tokens: list[bytes] = []
    for token in range(vocab.n_vocab):
        text = vocab.render(token, special=True)
        attr = llama.llama_vocab_get_attr(vocab.ptr, token)
        if attr & control or (
            attr & user_defined and text.startswith(b"<") and text.endswith(b">")
        ):
            text = b"\xff" + text
        tokens.append(text)
    tokenize = ctypes.cast(llama.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
    tokenizer: llguidance.LLTokenizer = llguidance.LLTokenizer.from_llamacpp(  # type: ignore[attr-defined]
        tokens=tokens,
        vocab_ptr=vocab.ptr,
        tokenize_fptr=tokenize,
        eos_token=sorted(vocab.eog_ids) or None,
        slices=None,
    )
    return tokenizer


class Constraints:
    """Compiled constraints by spec, each a matcher at its start state to copy from."""

    def __init__(self, vocab: GuidanceVocab, options: GuidanceOptions | None = None) -> None:
        self.vocab = vocab
        self._options = options or GuidanceOptions()
        self._lock = threading.Lock()
        self._known: dict[str, llguidance.LLMatcher] = {}  # insertion-ordered: oldest first

    def compile(self, spec: StructuredOutput) -> llguidance.LLMatcher:
        """The spec's start-state matcher; ``StructuredOutputError`` (a 400) names what
        cannot be enforced. Safe off the engine thread."""
        key = spec.key()
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return known
        tokenizer = self.vocab.tokenizer
        grammar = compile_grammar(spec, self.vocab.markup, self._options)
        check(grammar, tokenizer, self._options)
        matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise StructuredOutputError(matcher.get_error())
        with self._lock:
            if len(self._known) >= _CACHE:
                self._known.pop(next(iter(self._known)))
            self._known[key] = matcher
        return matcher


class Guide:
    """One choice's matcher: what the grammar allows, and what it forces."""

    def __init__(self, start: llguidance.LLMatcher, n_vocab: int) -> None:
        self._matcher: llguidance.LLMatcher | None = start.deep_copy()
        _live.add(1)
        self._n_vocab = n_vocab
        self._bits: npt.NDArray[np.int32] = np.zeros((1, (n_vocab + 31) // 32), np.int32)

    @property
    def matcher(self) -> llguidance.LLMatcher:
        if self._matcher is None:
            raise EngineError("the choice's grammar was already freed")
        return self._matcher

    def allows(self, token: int) -> bool:
        return bool(self.matcher.validate_tokens([token]) == 1)

    def allowed(self, banned: Iterable[int] = ()) -> npt.NDArray[np.bool_]:
        """Which tokens the grammar allows next (less ``banned``).  → [n_vocab] bool"""
        bits = self._bits[0]
        self.matcher.unsafe_compute_mask_ptr(bits.ctypes.data, bits.nbytes)
        allowed = np.unpackbits(bits.view(np.uint8), count=self._n_vocab, bitorder="little")
        mask = allowed.view(np.bool_)
        for token in banned:
            mask[token] = False
        return mask

    def forced(self) -> list[int]:
        """The tokens the grammar forces from here on (none, mostly)."""
        return list(self.matcher.compute_ff_tokens())

    def accept(self, tokens: list[int]) -> None:
        matcher = self.matcher
        if not matcher.consume_tokens(tokens):
            raise EngineError(f"the grammar refused a token it allowed: {matcher.get_error()}")

    @property
    def complete(self) -> bool:
        """The grammar is complete and allows no further token (but the end)."""
        return bool(self.matcher.is_stopped())

    def close(self) -> None:
        """Free the matcher (idempotent)."""
        if self._matcher is not None:
            self._matcher = None
            _live.add(-1)
