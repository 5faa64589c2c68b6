"""The prompts of a load: cut from one fixed text, each starting at a different word so that
none shares a cached prefix with another, and as many words as make ``--prompt-tokens``
tokens on the server under test (``calibrate``)."""

from __future__ import annotations

from typing import Any

import httpx

from tether.bench.completions import get_json

TEXT = (
    "The harbour town woke slowly on market days. Fishermen hauled their crates up the stone "
    "ramp while the bakers opened their shutters and the smell of warm bread drifted over the "
    "water. Children ran between the stalls, counting the coins they had saved for sweets, "
    "and old men argued about the weather as they had done every morning for fifty years. "
    "A clockmaker set out trays of brass gears beside a woman selling wool dyed with onion "
    "skins and walnut shells. Travellers from the hill villages arrived with cheese wrapped "
    "in leaves, honey in clay jars, and stories of wolves that nobody quite believed. By noon "
    "the square was loud with bargaining, music from a fiddler near the fountain, and the "
    "clatter of carts on the cobbles. In the afternoon the wind turned, clouds gathered over "
    "the lighthouse, and the traders began to pack away their goods, promising one another "
    "better prices next week. When the first drops of rain fell, the square emptied in "
    "minutes, leaving only the pigeons and a lost glove on the steps of the town hall. "
)
WORDS = TEXT.split()
WORDS_PER_TOKEN = 0.75  # English prose on common tokenizers: the estimate without a probe
PROBES = 4


def prompt(index: int, words: int) -> str:
    """The ``index``-th prompt: ``words`` words of ``TEXT`` starting at a different word.
    After every start has been used once, the prompts start with their round number, so
    no two prompts ever share more than their first token."""
    cycle, at = divmod(index, len(WORDS))
    start = (at * 7) % len(WORDS)  # 7 is coprime with the word count: every start is used
    text = [WORDS[(start + k) % len(WORDS)] for k in range(words)]
    if cycle:
        text[0] = f"({cycle}) {text[0]}"
    return " ".join(text)


async def calibrate(http: httpx.AsyncClient, model: str, target: int) -> dict[str, Any]:
    """How many words of ``TEXT`` make a ``target``-token prompt on this server.

    Also the warm-up: the first request to a server may pay for lazy initialisation.
    """
    words = max(1, round(target * WORDS_PER_TOKEN))
    measured = await _prompt_tokens(http, model, prompt(0, words))
    if measured is None:
        return {
            "target_tokens": target,
            "measured_tokens": None,
            "words": words,
            "method": "estimate",
        }
    for _ in range(PROBES - 1):
        if measured == target:
            break
        guess = max(1, round(words * target / measured))
        tokens = await _prompt_tokens(http, model, prompt(0, guess))
        if tokens is None or abs(tokens - target) >= abs(measured - target):
            break  # no closer: the tokenizer's granularity, keep what we have
        words, measured = guess, tokens
    return {"target_tokens": target, "measured_tokens": measured, "words": words, "method": "probe"}


async def _prompt_tokens(http: httpx.AsyncClient, model: str, text: str) -> int | None:
    body = {"model": model, "prompt": text, "max_tokens": 1}
    usage = (await get_json(http, "POST", "/completions", json=body)).get("usage") or {}
    tokens = usage.get("prompt_tokens")
    return tokens if isinstance(tokens, int) and tokens > 0 else None
