"""The wire shapes: the request schemas and the answers, chunks and model cards Tether
sends; the only modules (with the Responses API's own ``wire``) that know the JSON field
names of Together's API.
"""
