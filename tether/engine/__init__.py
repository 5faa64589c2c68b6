"""The engine seam: what the API asks of any engine and what it gets back.

``base.Engine`` is the protocol; ``request``, ``sampling_params``, ``structured`` and
``errors`` are the engine-neutral types that cross it. Engines live in ``tether.engines``.
"""
