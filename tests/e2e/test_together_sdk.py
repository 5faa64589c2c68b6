"""The ``together`` 3.x Python SDK against a real server, with both base-URL styles.

``together`` 3.x appends ``/v1/...`` to its base URL, so ``http://host:port`` is its native
form, and users who paste ``http://host:port/v1`` hit ``/v1/v1/...`` (wire-contract.md
"Routes"). Both must work.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from together import Together

from tests.e2e.conftest import Server, on_engines

pytestmark = [pytest.mark.e2e, on_engines()]

USER = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(params=["", "/v1"], ids=["host-port", "host-port-v1"])
def client(server: Server, request: pytest.FixtureRequest) -> Iterator[Together]:
    base_url = server.url + request.param
    with Together(base_url=base_url, api_key="unused", max_retries=0, timeout=60) as client:
        yield client


def test_streamed_chat_has_text_chunks_and_one_finishing_chunk_with_usage(
    client: Together, server: Server
) -> None:
    stream = client.chat.completions.create(
        model=server.model, messages=USER, max_tokens=12, stream=True
    )
    chunks = list(stream)

    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1
    assert finishing[0] is chunks[-1]
    assert finishing[0].choices[0].finish_reason in {"stop", "length"}
    usage = finishing[0].usage
    assert usage is not None and usage.completion_tokens >= 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.strip()
    assert all(c.choices[0].delta.role == "assistant" for c in chunks)


def test_chat_answer_has_message_finish_reason_and_usage(client: Together, server: Server) -> None:
    answer = client.chat.completions.create(model=server.model, messages=USER, max_tokens=12)

    assert answer.model == server.model
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert answer.usage is not None
    assert 1 <= answer.usage.completion_tokens <= 12


def test_completion_returns_text_that_continues_the_prompt(
    client: Together, server: Server
) -> None:
    answer = client.completions.create(
        model=server.model, prompt="One, two, three,", max_tokens=8, temperature=0
    )

    assert answer.object == "text.completion"
    assert answer.choices[0].text
    assert answer.choices[0].finish_reason in {"stop", "length"}
    assert answer.usage is not None and answer.usage.prompt_tokens >= 5


def test_models_list_retrieve_and_supported_with_a_project_id(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``together`` 3.x raised "Missing project_id" and then called v2 routes Tether did not
    serve (issue 14). With TOGETHER_PROJECT_ID set to any string, all three work."""
    monkeypatch.setenv("TOGETHER_PROJECT_ID", "local")
    for base_url in (server.url, server.v1):
        with Together(base_url=base_url, api_key="unused", max_retries=0, timeout=60) as client:
            listed = list(client.models.list())
            one = client.models.retrieve(server.model)
            supported = list(client.models.list_supported())

        assert [model.id for model in listed] == [server.model]
        assert listed[0].project_id == "local"
        assert one.id == server.model and int(one.weights.context_length or 0) > 0
        assert [model.id for model in supported] == [server.model]
