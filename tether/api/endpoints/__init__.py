"""The endpoint families: chat completions, completions, the legacy ``/inference``, and the
Responses API; each says only what it does differently on the shared pipeline.
"""
