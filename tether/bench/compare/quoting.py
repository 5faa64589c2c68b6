"""``tether bench compare``'s second workload: answers that quote their prompt (issue 21).

A ~600-token report, and "repeat it word for word with one name changed": what
summaries, RAG answers, code edits and agents repeating their context look like to a
server. One stream, greedy, up to ``QUOTE_MAX_TOKENS`` tokens, streamed completions;
the figure is output characters per second from the request to its last token.

Four servers, started afresh each round and run one after the other (the order rotating
from round to round): llama-server with its defaults and with ``--spec-default`` (its
n-gram speculation), Tether with ``--speculative off`` and with its default. Each request
quotes a different name, so no server answers from a cache of the one before. The report
adds how the speculation went: from Tether's ``/metrics`` (drafts, drafted and accepted
tokens, decode steps and their ``llama_decode`` time, against the same figures with
speculation off: what the extra positions cost) and from llama-server's ``timings``
(``draft_n``, ``draft_n_accepted``); and whether Tether's answers are the same with and
without speculation.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tether.client.api import DONE, sse_data

LLAMA_SPEC, TETHER_OFF = "llama-server --spec-default", "tether --speculative off"
QUOTE_MAX_TOKENS = 256

REPORT = """\
Annual report of the Northfield Community Library, prepared by the board.

In the past year the library lent 48,210 books, 6,112 audiobooks and 2,947 films, and
welcomed 61,500 visitors through its doors. The reading room on the first floor was
repainted in March, and the children's corner gained two new shelves and a reading tent
donated by the Harper family. Helen Brooks, our head librarian, led the move of the local
history collection to the climate-controlled archive in the basement, where 1,200 maps,
photographs and parish records are now kept at a steady temperature.

The summer reading programme ran from the first of July to the end of August. Four hundred
and twelve children signed up, and together they read 9,870 books. The closing party in the
garden had a magician, a storyteller and more lemonade than anyone could drink. Daniel
Okafor, who coordinates our volunteers, counted 73 volunteers who gave 3,400 hours of their
time, shelving books, running the homework club and teaching the evening computer classes.

Our budget for the year was 412,000 dollars. Staff salaries took 61 percent of it, new books
and subscriptions 22 percent, the building 11 percent and everything else 6 percent. The
town council renewed its grant of 250,000 dollars, and the Friends of the Library raised
another 38,000 dollars at the autumn book sale. Margaret Lin, our treasurer, reports that the
year closed with a small surplus of 4,300 dollars, which will go towards new chairs.

The building itself needed more care than usual. In January a burst pipe flooded the
staff kitchen, and the repairs took three weeks and cost 7,900 dollars, paid by the
insurance. The lift was inspected in April and passed. Solar panels on the south roof, put
up two years ago, produced 21,400 kilowatt hours, about a third of what the library used,
and the new lamps in the stacks cut the electricity bill by another 9 percent.

Next year the board plans to extend the opening hours on Thursdays until nine in the
evening, to start a lending service for tools and sewing machines, and to replace the
leaking roof above the periodicals room. The board thanks every reader, volunteer and donor
who made this year possible, and invites everyone to the open meeting on the second Monday
of February, in the reading room, at seven o'clock.
"""
NAMES = ("Helen Brooks", "Daniel Okafor", "Margaret Lin")
NEW_NAMES = ("Rosa Alvarez", "Tom Becker", "Yuki Tanaka", "Omar Haddad", "Ines Costa", "Leo Park")


def quoting_prompt(index: int) -> str:
    """The ``index``-th request's prompt: the report, and one name to change, as one user
    turn in Gemma's markup (the embedded model's), sent as a plain completion so that both
    servers read exactly the same tokens (llama-server gives a GGUF without a chat template
    ChatML's, which the model does not know)."""
    old = NAMES[index % len(NAMES)]
    new = NEW_NAMES[index % len(NEW_NAMES)]
    ask = f"Repeat this report word for word, with {old} renamed {new}:\n\n{REPORT}"
    return f"<start_of_turn>user\n{ask}<end_of_turn>\n<start_of_turn>model\n"


def quote_once(url: str, model: str, index: int) -> dict[str, Any]:
    """One streamed quoting answer: its text, characters/s and the server's own counts."""
    body = {
        "model": model,
        "prompt": quoting_prompt(index),
        "max_tokens": QUOTE_MAX_TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    pieces: list[str] = []
    extra: dict[str, Any] = {}
    started = time.perf_counter()
    last = started
    timeout = httpx.Timeout(10.0, read=600.0)
    with (
        httpx.Client(base_url=f"{url}/v1", timeout=timeout) as http,
        http.stream("POST", "/completions", json=body) as response,
    ):
        response.raise_for_status()
        for data in sse_data(response.iter_lines()):
            if data == DONE:
                break
            chunk = json.loads(data)
            for choice in chunk.get("choices") or []:
                piece = choice.get("text")
                if piece:
                    pieces.append(piece)
                    last = time.perf_counter()
            if chunk.get("usage"):
                extra["completion_tokens"] = chunk["usage"].get("completion_tokens")
            if chunk.get("timings"):  # llama-server's
                extra["draft_n"] = chunk["timings"].get("draft_n")
                extra["draft_n_accepted"] = chunk["timings"].get("draft_n_accepted")
    text = "".join(pieces)
    seconds = last - started
    return {"text": text, "seconds": seconds, "chars_per_s": len(text) / seconds, **extra}


_COUNTERS = {
    "tether:spec_decode_num_drafts": "drafts",
    "tether:spec_decode_num_draft_tokens": "draft_tokens",
    "tether:spec_decode_num_accepted_tokens": "accepted_tokens",
    "tether:engine_decode_steps": "decode_steps",
    "tether:engine_decode_kernel_seconds": "kernel_s",
    "tether:generation_tokens": "generation_tokens",
}


def tether_counters(url: str) -> dict[str, float]:
    """Tether's speculation and decode counters from ``/metrics`` (zeros elsewhere)."""
    found = dict.fromkeys(_COUNTERS.values(), 0.0)
    response = httpx.get(f"{url}/metrics", timeout=10)
    if response.status_code != 200:  # llama-server without --metrics
        return found
    for family in text_string_to_metric_families(response.text):
        key = _COUNTERS.get(family.name)
        if key is not None:
            found[key] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return found


def run_quoting(
    urls: dict[str, str], model_of: Callable[[str], str], round_: int, requests: int
) -> list[dict[str, Any]]:
    """One round of the quoting workload on every server (order rotating by round)."""
    names = list(urls)
    shift = round_ % len(names)
    runs = []
    for name in names[shift:] + names[:shift]:
        url = urls[name]
        before = tether_counters(url)
        answers = [quote_once(url, model_of(name), i) for i in range(requests)]
        after = tether_counters(url)
        counters = {k: after[k] - before[k] for k in after}
        runs.append({"name": name, "round": round_, "answers": answers, "counters": counters})
    return runs


def summarize_quoting(runs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Per server: the median over rounds of its characters/s (all its answers' characters
    over all their seconds); Tether's ratios to each llama-server; how speculation went."""
    by_name = {n: [r for r in runs if r["name"] == n] for n in names}
    rate = {
        n: statistics.median(
            sum(len(a["text"]) for a in r["answers"]) / sum(a["seconds"] for a in r["answers"])
            for r in rs
        )
        for n, rs in by_name.items()
        if rs
    }
    tether, llama = names[-1], names[0]
    ratios = {other: rate[tether] / rate[other] for other in names[:-1] if rate.get(other)}
    return {
        "chars_per_s": {n: round(v, 1) for n, v in rate.items()},
        "tether_ratio": {n: round(v, 3) for n, v in ratios.items()},
        "speculation": {n: _speculation(rs) for n, rs in by_name.items()},
        "same_text_with_and_without": _same_text(by_name.get(TETHER_OFF, []), by_name[tether]),
        "llama_server": llama,
    }


def _speculation(runs: list[dict[str, Any]]) -> dict[str, Any]:
    c: dict[str, float] = {}
    for run in runs:
        for k, v in run["counters"].items():
            c[k] = c.get(k, 0.0) + v
    answers = [a for run in runs for a in run["answers"]]
    tokens = sum(a.get("completion_tokens") or 0 for a in answers)
    drafted = sum(a.get("draft_n") or 0 for a in answers) or c.get("draft_tokens", 0.0)
    accepted = sum(a.get("draft_n_accepted") or 0 for a in answers) or c.get("accepted_tokens", 0.0)
    steps = c.get("decode_steps", 0.0)
    out: dict[str, Any] = {
        "completion_tokens": tokens,
        "drafted_tokens": int(drafted),
        "accepted_tokens": int(accepted),
        "acceptance": round(accepted / drafted, 3) if drafted else None,
    }
    if steps:
        out["decode_steps"] = int(steps)
        out["tokens_per_step"] = round(tokens / steps, 2)
        out["drafted_per_step"] = round(c.get("draft_tokens", 0.0) / steps, 2)
        out["kernel_ms_per_step"] = round(1000 * c.get("kernel_s", 0.0) / steps, 2)
    return out


def _same_text(off: list[dict[str, Any]], on: list[dict[str, Any]]) -> str | None:
    pairs = [
        (a["text"], b["text"])
        for r_off, r_on in zip(off, on, strict=False)
        for a, b in zip(r_off["answers"], r_on["answers"], strict=True)
    ]
    if not pairs:
        return None
    return f"{sum(a == b for a, b in pairs)}/{len(pairs)}"
