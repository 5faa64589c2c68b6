"""``/v1/completions``: raw prompt in, ``text.completion`` / ``completion.chunk`` out."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import COMPLETIONS, completion_body, sse_json
from tests.api.fake_engine import LOGPROB, FakeEngine, Script
from tether.engine.request import FinishReason


async def test_non_streaming_response(engine: FakeEngine, client: httpx.AsyncClient) -> None:
    response = await client.post(COMPLETIONS, json=completion_body("Once", seed=1))
    body = response.json()
    assert body["id"] == response.headers["x-request-id"]
    assert body["object"] == "text.completion"
    assert body["prompt"] == []
    [choice] = body["choices"]
    assert choice == {
        "index": 0,
        "text": "Hello world!",
        "finish_reason": "stop",
        "logprobs": None,
        "seed": 42,
    }
    assert body["usage"]["prompt_tokens"] == 5  # BOS + 4 characters, no chat template
    assert engine.templates == []


async def test_prompt_as_a_one_element_list(engine: FakeEngine, client: httpx.AsyncClient) -> None:
    response = await client.post(COMPLETIONS, json=completion_body(["Once"]))
    assert response.status_code == 200
    assert engine.requests[0].prompt_token_ids == engine.tokenize("Once")


async def test_prompt_list_of_two_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(COMPLETIONS, json=completion_body(["a", "b"]))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"


async def test_echo_puts_the_prompt_in_prompt_not_in_text(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(COMPLETIONS, json=completion_body("Once", echo=True, logprobs=1))
    ).json()
    [prompt] = body["prompt"]
    assert prompt["text"] == "Once"
    assert prompt["logprobs"]["tokens"] == ["", "O", "n", "c", "e"]  # BOS has no text
    assert prompt["logprobs"]["token_ids"][1:] == [ord(c) for c in "Once"]
    assert body["choices"][0]["text"] == "Hello world!"


async def test_logprobs_object(client: httpx.AsyncClient) -> None:
    body = (await client.post(COMPLETIONS, json=completion_body(logprobs=1))).json()
    logprobs = body["choices"][0]["logprobs"]
    assert logprobs["tokens"][:5] == list("Hello")
    assert logprobs["token_logprobs"][0] == LOGPROB
    assert logprobs["top_logprobs"][0] == {"H": LOGPROB}


async def test_stream_chunks(engine: FakeEngine, client: httpx.AsyncClient) -> None:
    engine.default = Script(["ab", "cd"], finish=FinishReason.LENGTH)
    response = await client.post(COMPLETIONS, json=completion_body(stream=True))
    chunks = sse_json(response.content)
    assert [c["object"] for c in chunks] == ["completion.chunk"] * 3
    first = chunks[0]
    assert first["choices"][0]["text"] == "ab"
    assert first["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "ab",
        "token_id": ord("b"),
    }
    assert first["choices"][0]["logprobs"] is None  # not asked for
    assert first["token"]["id"] == ord("b")
    assert first["token"]["logprob"] == LOGPROB
    finish = chunks[-1]
    assert finish["choices"][0]["text"] == ""
    assert finish["choices"][0]["finish_reason"] == "length"
    assert finish["choices"][0]["seed"] == 42
    # together 3.x and TypeScript read them at the top level of the finishing chunk too.
    assert (finish["finish_reason"], finish["seed"]) == ("length", 42)
    assert "finish_reason" not in first
    assert finish["usage"]["completion_tokens"] == 4


async def test_stream_include_usage(client: httpx.AsyncClient) -> None:
    body = completion_body(stream=True, stream_options={"include_usage": True})
    chunks = sse_json((await client.post(COMPLETIONS, json=body)).content)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["usage"] is None


@pytest.mark.parametrize("stop", ["\n", ["\n", "END"]])
async def test_stop_string_or_list(
    engine: FakeEngine, client: httpx.AsyncClient, stop: str | list[str]
) -> None:
    await client.post(COMPLETIONS, json=completion_body(stop=stop))
    assert engine.requests[0].params.stop == ((stop,) if isinstance(stop, str) else tuple(stop))


async def test_long_prompt_is_tokenized_off_the_event_loop(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.context_length = 50_000
    response = await client.post(COMPLETIONS, json=completion_body("x" * 20_000, max_tokens=5))
    assert response.status_code == 200
    assert response.json()["usage"]["prompt_tokens"] == 20_001
