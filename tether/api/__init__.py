"""The HTTP API: Together's inference API over an ``Engine`` (see ``tether.api.app``)."""
