"""Incremental detokenization with UTF-8 and stop-string hold-back (one per choice)."""

from __future__ import annotations

import codecs
from collections.abc import Callable


class Detokenizer:
    """Turns one choice's sampled tokens into text, safe to send as soon as it is released.

    ``add_token`` returns the text that can be sent now. It never releases part of a UTF-8
    character (the incremental decoder keeps incomplete bytes), nor any suffix that could
    still grow into a stop string (a stop string may end inside a token or span several).
    When a stop string appears, the text before it is released, the stop string and
    everything after it are dropped, and ``stopped`` becomes True.
    """

    def __init__(self, piece: Callable[[int], bytes], stop: tuple[str, ...] = ()) -> None:
        self._piece = piece
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = stop
        self._held = ""
        self.stopped = False

    def add_token(self, token_id: int) -> str:
        """Feed one token; return the newly releasable text (possibly empty)."""
        if self.stopped:
            return ""
        text = self._decoder.decode(self._piece(token_id))
        if not self._stop:
            return text
        self._held += text
        return self._release()

    def finalize(self) -> str:
        """Flush everything held back at the end of generation (not after a stop string)."""
        if self.stopped:
            return ""
        # A dangling partial UTF-8 character becomes U+FFFD, as every decoder does.
        text = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return text

    def _release(self) -> str:
        held = self._held
        cut = min((i for i in (held.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return held[:cut]
        keep = self._longest_stop_prefix_suffix(held)
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep]

    def _longest_stop_prefix_suffix(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
        best = 0
        for stop in self._stop:
            for k in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:k]):
                    best = k
                    break
        return best
