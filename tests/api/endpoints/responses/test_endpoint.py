"""``/v1/responses`` over the scripted engine: the response object, the typed event stream
and its framing, stored responses, conversations, background responses and resuming."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.fake_engine import MODEL_ID, FakeEngine, Script
from tether.api.app import create_app
from tether.chat.reasoning import ReasoningMarkers
from tether.config import ServerConfig
from tether.engine.request import FinishReason

RESPONSES = "/v1/responses"


@pytest.fixture
def config() -> ServerConfig:
    return ServerConfig(state_db=":memory:")


@pytest.fixture(autouse=True)
async def close_store(app: FastAPI) -> AsyncIterator[None]:
    yield
    if app.state.store is not None:
        await app.state.store.close()


def body(input_: Any = "Hi", **fields: Any) -> dict[str, Any]:
    return {"model": MODEL_ID, "input": input_, **fields}


def events(response: httpx.Response) -> list[dict[str, Any]]:
    """The typed events of a Responses stream, checking each ``event:`` line names its type."""
    text = response.text
    assert "[DONE]" not in text
    parsed = []
    for block in text.split("\n\n")[:-1]:
        if block.startswith(":"):
            continue
        name_line, data_line = block.split("\n")
        event = json.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {event['type']}"
        parsed.append(event)
    return parsed


async def test_a_plain_response(client: httpx.AsyncClient, engine: FakeEngine) -> None:
    response = await client.post(RESPONSES, json=body(instructions="Be brief."))
    assert response.status_code == 200
    result = response.json()
    assert result["id"].startswith("resp_") and result["object"] == "response"
    assert result["status"] == "completed"
    [message] = result["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0] == {
        "type": "output_text",
        "text": "Hello world!",
        "annotations": [],
        "logprobs": [],
    }
    assert result["usage"]["output_tokens"] == len("Hello world!") + 1
    assert result["usage"]["output_tokens_details"] == {"reasoning_tokens": 0}
    messages = engine.templates[-1][0]
    assert [(m.role, m.content) for m in messages] == [("system", "Be brief."), ("user", "Hi")]


async def test_the_stream_is_typed_events_with_event_lines(client: httpx.AsyncClient) -> None:
    response = await client.post(RESPONSES, json=body(stream=True))
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = events(response)
    assert [e["sequence_number"] for e in stream] == list(range(len(stream)))
    assert [e["type"] for e in stream] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(e["delta"] for e in stream if e["type"].endswith(".delta")) == "Hello world!"
    assert stream[-1]["response"]["output"][0]["content"][0]["text"] == "Hello world!"


async def test_max_output_tokens_makes_it_incomplete(
    client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    engine.default = Script(["Once upon"], finish=FinishReason.LENGTH)
    result = (await client.post(RESPONSES, json=body(max_output_tokens=9))).json()
    assert result["status"] == "incomplete"
    assert result["incomplete_details"] == {"reason": "max_output_tokens"}
    assert engine.requests[-1].params.max_tokens == 9


async def test_reasoning_is_its_own_output_item(
    client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    engine.reasoning_markers = ReasoningMarkers("<think>", "</think>")
    engine.default = Script(["Two and two.", "</think>", "4"])
    response = await client.post(RESPONSES, json=body(stream=True, reasoning={"effort": "low"}))
    stream = events(response)
    final = stream[-1]["response"]
    reasoning, message = final["output"]
    assert reasoning["type"] == "reasoning"
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Two and two."}]
    assert message["content"][0]["text"] == "4"
    assert "response.reasoning_text.delta" in [e["type"] for e in stream]
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    assert engine.variables[-1]["reasoning_effort"] == "low"


async def test_a_function_call_and_its_output(
    client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    engine.default = Script(
        ['<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>']
    )
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    first = (await client.post(RESPONSES, json=body(tools=[tool]))).json()
    [call] = first["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert call["call_id"].startswith("call_")

    engine.default = Script(["It is sunny."])
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "24 C"}
    second = await client.post(
        RESPONSES, json=body([output], previous_response_id=first["id"], tools=[tool])
    )
    assert second.json()["output"][0]["content"][0]["text"] == "It is sunny."
    history = engine.templates[-1][0]
    assert [m.role for m in history] == ["user", "assistant", "tool"]
    assert history[1].tool_calls[0].name == "get_weather"
    assert history[2].tool_call_id == call["call_id"] and history[2].content == "24 C"


async def test_a_conversation_continues_from_the_store(
    client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    first = (await client.post(RESPONSES, json=body("What is 2+2?", instructions="Old"))).json()
    second = (
        await client.post(RESPONSES, json=body("And 3+3?", previous_response_id=first["id"]))
    ).json()
    await client.post(RESPONSES, json=body("And 4+4?", previous_response_id=second["id"]))
    messages = engine.templates[-1][0]
    assert [(m.role, m.content) for m in messages] == [
        ("user", "What is 2+2?"),  # instructions are not carried over
        ("assistant", "Hello world!"),
        ("user", "And 3+3?"),
        ("assistant", "Hello world!"),
        ("user", "And 4+4?"),
    ]


async def test_retrieve_delete_and_input_items(client: httpx.AsyncClient) -> None:
    items = [{"role": "user", "content": f"message {n}"} for n in range(5)]
    created = (await client.post(RESPONSES, json=body(items))).json()
    rid = created["id"]
    assert (await client.get(f"{RESPONSES}/{rid}")).json() == created

    page = (await client.get(f"{RESPONSES}/{rid}/input_items", params={"limit": 2})).json()
    assert page["object"] == "list" and page["has_more"]
    assert [i["content"][0]["text"] for i in page["data"]] == ["message 4", "message 3"]
    rest = await client.get(
        f"{RESPONSES}/{rid}/input_items", params={"after": page["last_id"], "order": "desc"}
    )
    assert [i["content"][0]["text"] for i in rest.json()["data"]] == [
        "message 2",
        "message 1",
        "message 0",
    ]
    ascending = await client.get(f"{RESPONSES}/{rid}/input_items", params={"order": "asc"})
    assert ascending.json()["data"][0]["content"][0]["text"] == "message 0"

    deleted = await client.delete(f"{RESPONSES}/{rid}")
    assert deleted.json() == {"id": rid, "object": "response", "deleted": True}
    missing = await client.get(f"{RESPONSES}/{rid}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_store_false_is_not_stored(client: httpx.AsyncClient) -> None:
    created = (await client.post(RESPONSES, json=body(store=False))).json()
    assert created["store"] is False
    assert (await client.get(f"{RESPONSES}/{created['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"tools": [{"type": "mcp", "server_url": "https://example.com"}]}, "tools"),
        ({"frequency_penalty": 1}, "frequency_penalty"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"input": [{"type": "input_image", "image_url": "x"}]}, "input"),
        ({"previous_response_id": "resp_nope"}, "previous_response_id"),
        ({"background": True, "store": False}, "background"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format"),
    ],
)
async def test_what_is_not_supported_is_a_400_naming_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    response = await client.post(RESPONSES, json={**body(), **fields})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_a_json_schema_format_constrains_the_output(
    client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}
    result = (await client.post(RESPONSES, json=body(text={"format": fmt}))).json()
    assert engine.requests[-1].params.structured is not None
    assert engine.requests[-1].params.structured.json_schema == schema
    assert result["text"]["format"]["name"] == "thing"


async def test_a_background_response_is_polled_and_its_stream_resumed(
    client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    engine.default = Script(["one", " two", " three", " four"], delay_s=0.02)
    queued = (await client.post(RESPONSES, json=body(background=True))).json()
    assert queued["status"] in ("queued", "in_progress") and queued["background"] is True
    rid = queued["id"]
    for _ in range(200):
        polled = (await client.get(f"{RESPONSES}/{rid}")).json()
        if polled["status"] == "completed":
            break
        await asyncio.sleep(0.02)
    assert polled["status"] == "completed"
    whole = (await client.get(f"{RESPONSES}/{rid}", params={"stream": "true"})).text
    resumed = await client.get(f"{RESPONSES}/{rid}", params={"stream": "true", "starting_after": 5})
    tail = events(resumed)
    assert tail[0]["sequence_number"] == 6 and tail[-1]["type"] == "response.completed"
    assert whole.endswith(resumed.text)


async def test_only_background_responses_stream_again_or_cancel(
    client: httpx.AsyncClient,
) -> None:
    rid = (await client.post(RESPONSES, json=body())).json()["id"]
    again = await client.get(f"{RESPONSES}/{rid}", params={"stream": "true"})
    assert again.status_code == 400 and again.json()["error"]["param"] == "stream"
    assert (await client.post(f"{RESPONSES}/{rid}/cancel")).status_code == 400


async def test_cancel_stops_a_background_response(
    client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    engine.default = Script(["a"] * 200, delay_s=0.02)
    rid = (await client.post(RESPONSES, json=body(background=True))).json()["id"]
    await asyncio.sleep(0.1)
    cancelled = (await client.post(f"{RESPONSES}/{rid}/cancel")).json()
    assert cancelled["status"] == "cancelled"
    assert (await client.get(f"{RESPONSES}/{rid}")).json()["status"] == "cancelled"
    assert engine.aborted  # the engine stopped generating it


async def test_without_a_store_nothing_is_kept() -> None:
    engine = FakeEngine()
    app = create_app(engine, ServerConfig(no_store=True), chat=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        created = (await client.post(RESPONSES, json=body())).json()
        assert created["status"] == "completed" and created["store"] is False
        assert (await client.get(f"{RESPONSES}/{created['id']}")).status_code == 404
        background = await client.post(RESPONSES, json=body(background=True))
        assert background.status_code == 400


async def test_a_broken_database_is_a_500_and_nothing_is_claimed_stored(
    tmp_path: Any,
) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database" * 100)
    engine = FakeEngine()
    app = create_app(engine, ServerConfig(state_db=str(path)), chat=engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(RESPONSES, json=body())
            assert response.status_code == 500
            assert response.json()["error"]["code"] == "storage_error"
            streamed = await client.post(RESPONSES, json=body(stream=True))
            stream = events(streamed)
            assert stream[-1]["type"] == "response.failed"
            assert "response.completed" not in [e["type"] for e in stream]
    finally:
        await app.state.store.close()


async def test_a_generation_that_fails_is_the_error_status_not_a_200(
    client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    engine.default = Script(["a", "b", "c"], fail_after=1)
    response = await client.post(RESPONSES, json=body())
    assert response.status_code >= 500
    streamed = events(await client.post(RESPONSES, json=body(stream=True)))
    assert streamed[-1]["type"] == "response.failed"


async def test_shutdown_stores_a_running_background_response_as_failed(
    app: FastAPI, client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    engine.default = Script(["a"] * 500, delay_s=0.02)
    rid = (await client.post(RESPONSES, json=body(background=True))).json()["id"]
    await asyncio.sleep(0.1)
    await app.state.responses.shutdown(timeout=5)
    stored = await app.state.store.get(rid)
    assert stored is not None and stored.body["status"] == "failed"
    assert stored.body["error"]["code"] == "server_shutdown"
