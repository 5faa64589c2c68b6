"""The ``openai`` Python SDK (sync and async) against a real server at ``.../v1``."""

from __future__ import annotations

import openai
import pytest

from tests.e2e.conftest import Server, on_engines

pytestmark = [pytest.mark.e2e, on_engines()]

USER = [{"role": "user", "content": "Name three colours."}]


def test_streamed_chat_ends_with_a_finishing_chunk(
    openai_client: openai.OpenAI, server: Server
) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model=server.model, messages=USER, max_tokens=12, stream=True
        )
    )

    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()
    finishing = [i for i, c in enumerate(chunks) if c.choices[0].finish_reason is not None]
    assert finishing == [len(chunks) - 1]
    assert len({c.id for c in chunks}) == 1


def test_include_usage_sends_usage_once_on_a_chunk_without_choices(
    openai_client: openai.OpenAI, server: Server
) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model=server.model,
            messages=USER,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1
    assert with_usage[0] is chunks[-1]
    assert chunks[-1].choices == []
    assert all(c.choices for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason in {"stop", "length"}
    usage = chunks[-1].usage
    assert usage is not None
    streamed_pieces = sum(1 for c in chunks[:-1] if c.choices[0].delta.content)
    assert 1 <= streamed_pieces <= usage.completion_tokens <= 12


async def test_async_streamed_chat_reads_to_the_end(
    async_openai_client: openai.AsyncOpenAI, server: Server
) -> None:
    stream = await async_openai_client.chat.completions.create(
        model=server.model, messages=USER, max_tokens=12, stream=True
    )
    chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}


async def test_async_include_usage(async_openai_client: openai.AsyncOpenAI, server: Server) -> None:
    stream = await async_openai_client.chat.completions.create(
        model=server.model,
        messages=USER,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert [c.usage is not None for c in chunks].count(True) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_models_list_returns_the_served_model(openai_client: openai.OpenAI, server: Server) -> None:
    assert [model.id for model in openai_client.models.list()] == [server.model]


def test_completion_without_streaming(openai_client: openai.OpenAI, server: Server) -> None:
    answer = openai_client.completions.create(
        model=server.model, prompt="The sky is", max_tokens=8, temperature=0
    )

    assert answer.choices[0].text
    assert answer.choices[0].finish_reason in {"stop", "length"}
    assert answer.usage is not None and 1 <= answer.usage.completion_tokens <= 8


async def test_async_chat_without_streaming(
    async_openai_client: openai.AsyncOpenAI, server: Server
) -> None:
    answer = await async_openai_client.chat.completions.create(
        model=server.model, messages=USER, max_tokens=8
    )

    assert answer.choices[0].message.content
    assert answer.choices[0].message.role == "assistant"
