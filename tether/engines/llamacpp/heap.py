"""``HeapTrimmer``: gives back to the OS the C heap that grammar-constrained choices freed.

Measured with llama.cpp's grammar sampler, which Tether used until issue 24; with
llguidance the trimmer still runs after constrained choices end, for whatever they left.
A grammar-constrained choice had llama.cpp apply its grammar to the whole vocabulary
(262,144 tokens for the default model) whenever the unconstrained pick is rejected: each
time, hundreds of thousands of small C++ vectors and a few buffers of several MB, allocated
and freed on the engine thread. An ``n = 4``, ``json_object`` request of 8 tokens takes RSS
up by as much as 160 MB while it samples. glibc keeps what was freed in the engine thread's
arena: freed, but resident, until something reuses it.

Issue 22 measured it (``mallinfo2``, ``malloc_info``): after such requests the engine
thread's arena held 181 MB, 179 MB of it free, while the process's in-use total stayed at
74 MB; the main arena, where the event loop and every refused request allocate, did not
grow. ``malloc_trim(0)`` took RSS from 777 back to 598 MB. So once grammar-constrained
choices end, the engine thread calls ``malloc_trim(0)``, which hands back every free page in
the arenas' bins, wherever it lies. (A thread arena's top chunk is not among them: glibc
shrinks it on ``free`` once it passes the trim threshold, so a few MB may stay.)

When: once a grammar-constrained choice has ended since the last trim, and no
grammar-constrained choice is still sampling (its working set would only be faulted back
in), or ``max_interval_s`` has passed since the last trim (a server that is never without a
grammar still trims twice a minute). A trim takes a few milliseconds (``trim_s`` sums them).
Only glibc has ``malloc_trim``; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_INTERVAL_S = 30.0


def _load_malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or ``None`` where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


malloc_trim = _load_malloc_trim()


class HeapTrimmer:
    """Decides, after each engine step, whether to trim (see the module's docstring)."""

    def __init__(
        self,
        trim: Callable[[], object] | None = malloc_trim,
        *,
        grammars_ended: int = 0,
        max_interval_s: float = MAX_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._trim = trim
        self.max_interval_s = max_interval_s
        self._clock = clock
        self._last = clock()
        self._seen = grammars_ended  # grammar choices ended as of the last trim
        self.trims = 0
        self.trim_s = 0.0  # seconds spent in malloc_trim, all trims together

    def after_step(self, grammars_ended: int, grammar_running: Callable[[], bool]) -> bool:
        """Trim if it is time; return whether it did.

        grammars_ended: grammar-constrained choices ended so far (a running count);
        grammar_running: whether any running choice has a grammar (asked only when one has
        ended since the last trim).
        """
        if self._trim is None or grammars_ended == self._seen:
            return False
        now = self._clock()
        if now - self._last < self.max_interval_s and grammar_running():
            return False
        self._trim()
        self._last = self._clock()
        self._seen = grammars_ended
        self.trims += 1
        self.trim_s += self._last - now
        log.debug("malloc_trim: %.1f ms", 1000 * (self._last - now))
        return True
