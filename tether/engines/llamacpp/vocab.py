"""``Vocab``: the model's vocabulary, the one place token ids and text meet.

Text becomes ids in ``tokenize``; an id becomes text in ``piece`` (the bytes it adds to the
generated text, which the ``Detokenizer`` assembles) or ``text`` / ``special`` (its own
text, special tokens included, for ``token.text`` and logprob displays). All three come from
one cache entry per id, rendered the first time the id is seen: they are asked per token.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass

import llama_cpp as llama

from tether.engine.errors import EngineError


@dataclass(frozen=True, slots=True)
class _Token:
    piece: bytes  # what it adds to generated text (control tokens add nothing)
    text: str  # its own text, special tokens spelled out
    special: bool


class Vocab:
    """Wraps a model's ``llama_vocab``; ``ptr`` is what llama.cpp's samplers take."""

    def __init__(self, model: llama.llama_model_p) -> None:
        self.ptr: llama.llama_vocab_p = llama.llama_model_get_vocab(model)
        self.n_vocab = int(llama.llama_vocab_n_tokens(self.ptr))
        self.eog_ids = frozenset(
            t for t in range(self.n_vocab) if llama.llama_vocab_is_eog(self.ptr, t)
        )
        self._tokens: dict[int, _Token] = {}
        self._kept: dict[tuple[str, ...], frozenset[int]] = {}

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids of ``text`` (BOS first if ``add_special``); special-token text is parsed."""
        data = text.encode()
        cap = len(data) + 8
        buf = (llama.llama_token * cap)()
        n = llama.llama_tokenize(self.ptr, data, len(data), buf, cap, add_special, True)
        if n < 0:
            raise EngineError(f"tokenization needed {-n} tokens, more than {cap}")
        return list(buf[:n])

    def piece(self, token_id: int) -> bytes:
        return self._token(token_id).piece

    def pieces_keeping(self, markers: tuple[str, ...]) -> Callable[[int], bytes]:
        """``piece``, except that the special tokens spelled by ``markers`` keep their text
        (a tool-call format's markers, which its parser reads; issue 19)."""
        kept = self._kept.get(markers)
        if kept is None:
            kept = self._kept[markers] = frozenset(
                ids[0]
                for ids in (self.tokenize(marker, add_special=False) for marker in markers)
                if len(ids) == 1 and self.special(ids[0]) and ids[0] not in self.eog_ids
            )
        if not kept:
            return self.piece
        return lambda token_id: (
            self.text(token_id).encode() if token_id in kept else self.piece(token_id)
        )

    def text(self, token_id: int) -> str:
        return self._token(token_id).text

    def special(self, token_id: int) -> bool:
        return self._token(token_id).special

    def _token(self, token_id: int) -> _Token:
        known = self._tokens.get(token_id)
        if known is None:
            known = self._tokens[token_id] = _Token(
                piece=self.render(token_id, special=False),
                text=self.render(token_id, special=True).decode(errors="replace"),
                special=bool(llama.llama_vocab_is_control(self.ptr, token_id))
                or token_id in self.eog_ids,
            )
        return known

    def render(self, token_id: int, special: bool) -> bytes:
        """The token's bytes as llama.cpp writes them (``special``: control tokens too)."""
        buf = ctypes.create_string_buffer(64)
        n = llama.llama_token_to_piece(self.ptr, token_id, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama.llama_token_to_piece(self.ptr, token_id, buf, -n, 0, special)
        return buf.raw[:n]
