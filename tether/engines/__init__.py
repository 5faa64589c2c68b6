"""Implementations of ``tether.engine.base.Engine``, one package each."""
