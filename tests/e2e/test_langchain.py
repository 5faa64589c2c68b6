"""LangChain against a real server (issue 14): ``langchain-openai``'s ``ChatOpenAI`` streamed
into a ``TypeError`` on Together's float ``logprobs`` that nobody asked for, and it sends
``max_completion_tokens`` (not ``max_tokens``), which Tether ignored; ``langchain-together``'s
``ChatTogether`` (the same client underneath, pointed at Together's API) works unchanged."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI
from langchain_together import ChatTogether

from tests.e2e.conftest import Server, on_engines

pytestmark = [pytest.mark.e2e, on_engines()]


def chat_model(
    server: Server, cls: type[BaseChatOpenAI] = ChatOpenAI, **kwargs: object
) -> BaseChatOpenAI:
    """A LangChain chat model for ``server`` (``ChatOpenAI`` or ``ChatTogether``, both built
    on langchain-openai's client)."""
    return cls(
        model=server.model,
        base_url=server.v1,
        api_key="unused",  # type: ignore[arg-type]
        temperature=0,
        max_retries=0,
        **kwargs,  # type: ignore[arg-type]
    )


def test_streaming_with_usage_counts_usage_once_and_honours_max_tokens(server: Server) -> None:
    model = chat_model(server, max_tokens=5, stream_usage=True)

    chunks = list(model.stream("Name three colours."))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk  # LangChain's own merge: this raised the TypeError

    assert whole.content
    usage = whole.usage_metadata
    assert usage is not None
    assert usage["output_tokens"] <= 5
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_invoke_honours_max_tokens(server: Server) -> None:
    answer = chat_model(server, max_tokens=3).invoke("Tell me a long story.")

    assert answer.usage_metadata is not None
    assert answer.usage_metadata["output_tokens"] <= 3


def test_langchain_together_streams_and_invokes(server: Server) -> None:
    model = chat_model(server, ChatTogether, max_tokens=5, stream_usage=True)

    chunks = list(model.stream("Name three colours."))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    assert whole.content
    assert whole.usage_metadata is not None
    assert 1 <= whole.usage_metadata["output_tokens"] <= 5

    answer = chat_model(server, ChatTogether, max_tokens=3).invoke("Tell me a long story.")
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["output_tokens"] <= 3
