"""A vocabulary of the 256 bytes and some special tokens, to run llguidance's matcher over
text without a model: each byte is a token, each special token's text is one token."""

from __future__ import annotations

import re
from collections.abc import Iterable

from llguidance import LLMatcher, LLTokenizer, TokenizerWrapper

from tether.engine.guidance import Markup, plain_markup, special_markup

EOS = "<eos>"


class ByteVocab:
    def __init__(self, specials: Iterable[str] = ()) -> None:
        self.specials = [*dict.fromkeys(specials), EOS]
        self.ids = {text: 256 + index for index, text in enumerate(self.specials)}
        self.tokens = [bytes([byte]) for byte in range(256)]
        # llguidance knows a special token by its text's leading 0xFF byte.
        self.tokens += [b"\xff" + text.encode() for text in self.specials]
        self.eos_token_id = self.ids[EOS]
        self.bos_token_id = None
        self.special_token_ids = list(self.ids.values())
        self.tokenizer = LLTokenizer(TokenizerWrapper(self))
        longest = sorted(self.specials, key=len, reverse=True)
        self._special = re.compile("|".join(re.escape(text) for text in longest))

    def __call__(self, text: bytes) -> list[int]:
        return list(text)

    @property
    def markup(self) -> Markup:
        """How the compiler writes markup for this vocabulary."""
        special = {text: id for text, id in self.ids.items() if text != EOS}
        return special_markup(special) if special else plain_markup

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        at = 0
        for found in self._special.finditer(text):
            ids += text[at : found.start()].encode()
            ids.append(self.ids[found.group()])
            at = found.end()
        return ids + list(text[at:].encode())

    def accepts(self, grammar: str, text: str) -> bool:
        """Whether the grammar allows ``text`` as a whole answer (then the end of it)."""
        matcher = LLMatcher(self.tokenizer, grammar)
        assert not matcher.get_error(), matcher.get_error()
        ids = self.encode(text)
        if matcher.validate_tokens(ids) < len(ids):
            return False
        assert matcher.consume_tokens(ids)
        return matcher.validate_tokens([self.eos_token_id]) == 1
