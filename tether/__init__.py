"""Tether: a self-hosted LLM inference server that speaks Together AI's API."""

__version__ = "0.1.0"
