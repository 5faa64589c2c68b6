"""OpenAI's Responses API (``/v1/responses``) on the same engine: wire shapes (``wire``),
items ↔ chat messages (``convert``), a response's generation and its event log (``job``), and
the routes (``endpoint``). Stored state lives in ``tether.state``."""
