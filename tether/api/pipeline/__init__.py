"""The request pipeline every generation endpoint shares: admission (body, limits, model),
prompt, generation, results, streaming, and ``GenerationEndpoint``, the one path they all
take.
"""
