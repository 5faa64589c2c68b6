"""``tether bench compare``: Tether against llama.cpp's own ``llama-server``, side by side.

    tether bench compare [--rounds 3] [--concurrency 1,4,16,64] [--out bench-results/compare]

Builds ``llama-server`` from the llama.cpp that llama-cpp-python vendors (``llama_server``),
then loads it and ``tether serve`` one after the other on the same GGUF, the same threads,
slots, context and batch. Each round starts both processes afresh (an idle one uses no CPU)
and runs every load on one and then on the other, the order alternating from load to load
and round to round, so that neither side always runs on a CPU the other has just heated.
The loads, per server and round:

- closed loop at each concurrency level N: 8 requests at N=1, 3×N otherwise;
- open loop: ``--open-requests`` Poisson arrivals at ``--load`` × llama-server's capacity
  (its best closed-loop requests/s in the first round), the same arrival times for both;
- Tether only: its decode-step timing from ``/metrics`` around the 1-stream level, for the
  per-token server overhead (client-observed mean inter-token latency minus the engine's
  mean decode step, and how much of that step is Python rather than ``llama_decode``).

Every request streams a completion of ``--prompt-tokens`` prompt tokens and exactly
``--max-tokens`` output tokens (``ignore_eos``, greedy), as ``tether bench`` does; no prompt
shares a prefix with another, and each server's first load of a round sizes the prompt for
the rest. With ``--response-format FILE`` (an OpenAI ``response_format`` object, as for
``tether bench``) every request of both servers is constrained by it, so constrained decoding
compares side by side; llama-server, whose ``/v1/completions`` reads no ``response_format``,
gets the schema as its own ``json_schema`` field (``bench.response_format``). The answers
then end where their JSON does, so output lengths vary.

The summary takes, for every metric, the median over rounds of each server's value and the
median of the per-round ratios (Tether / llama-server), and checks the targets of issue 13.
Writes ``compare.json`` (every run's full result and the
summary), ``compare.png`` and ``compare.md`` (the summary as a Markdown table) into ``--out``.
"""
