"""Tool-call ids in the shape a model family requires.

OpenAI's ids (``call_`` + 24 hex) suit most templates, but Mistral's refuse any id that is
not 9 alphanumerics ("Tool call IDs should be alphanumeric strings with length 9!"). For
such a template, new ids are made in that shape, and an id a client sends back in another
shape (an earlier OpenAI-style id, or one from another server) is mapped to 9 alphanumerics
by a hash, so a call and its result still match after the mapping (issue 19).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass

_ALPHANUMERIC = string.ascii_letters + string.digits
_NINE = re.compile(r"[A-Za-z0-9]{9}")


@dataclass(frozen=True, slots=True)
class CallIds:
    """``nine``: the template wants 9 alphanumerics (Mistral)."""

    nine: bool = False

    @classmethod
    def for_template(cls, source: str | None) -> CallIds:
        return cls(nine=bool(source) and "length 9" in (source or ""))

    def new(self) -> str:
        if self.nine:
            return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(9))
        return f"call_{secrets.token_hex(12)}"

    def for_template_id(self, call_id: str) -> str:
        """A client's id as the template accepts it; the same id always maps the same way."""
        if not self.nine or _NINE.fullmatch(call_id):
            return call_id
        number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
        digits = []
        for _ in range(9):
            number, digit = divmod(number, len(_ALPHANUMERIC))
            digits.append(_ALPHANUMERIC[digit])
        return "".join(digits)
