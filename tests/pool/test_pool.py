"""Several models in one server (``tether.pool``), through the API: loaded on demand,
evicted least recently used first under a count or memory budget, never while busy,
unloaded after their TTL, and a failure kept with its model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import CHAT, COMPLETIONS
from tests.api.fake_engine import Script
from tests.pool.fakes import GIB, FakeFactory
from tether.api.app import create_app
from tether.config import ServerConfig
from tether.pool.control import ModelControl
from tether.pool.pool import Limits, ModelPool
from tether.pool.spec import model_table

TWO = ServerConfig(models=("a=/m/a.gguf", "b=/m/b.gguf"))
THREE = ServerConfig(models=("a=/m/a.gguf", "b=/m/b.gguf", "c=/m/c.gguf"))


@asynccontextmanager
async def serving(
    config: ServerConfig,
    factory: FakeFactory,
    limits: Limits | None = None,
    available: Callable[[], int] = lambda: 1000 * GIB,
    **options: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, ModelPool]]:
    pool = ModelPool(
        model_table(config), factory, limits or Limits(), available=available, **options
    )
    app = create_app(pool, config)
    await pool.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, pool
    finally:
        await pool.stop()


def ask(model: str | None, content: str = "Hi", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], **fields}
    if model is not None:
        body["model"] = model
    return body


async def states(client: httpx.AsyncClient) -> dict[str, str]:
    cards = (await client.get("/v1/models")).json()
    return {card["id"]: card["state"] for card in cards}


async def test_a_request_loads_its_model_on_demand() -> None:
    factory = FakeFactory()
    async with serving(TWO, factory) as (client, _):
        assert factory.started() == []  # nothing is resident until asked for
        assert await states(client) == {"a": "STOPPED", "b": "STOPPED"}
        response = await client.post(CHAT, json=ask("b"))
        assert response.status_code == 200
        assert response.json()["model"] == "b"
        assert response.json()["choices"][0]["message"]["content"] == "Hello world!"
        assert factory.started() == ["b"]
        assert await states(client) == {"a": "STOPPED", "b": "STARTED"}


async def test_two_models_answer_at_once() -> None:
    factory = FakeFactory(script=Script(["Hello", " world", "!"], delay_s=0.02))
    async with serving(TWO, factory) as (client, _):
        a, b = await asyncio.gather(
            client.post(CHAT, json=ask("a")),
            client.post(COMPLETIONS, json={"model": "b", "prompt": "x"}),
        )
        assert (a.status_code, b.status_code) == (200, 200)
        assert a.json()["model"] == "a" and b.json()["model"] == "b"
        assert sorted(factory.started()) == ["a", "b"]


async def test_the_least_recently_used_idle_model_is_evicted() -> None:
    factory = FakeFactory()
    async with serving(THREE, factory, Limits(max_loaded=2)) as (client, _):
        for model in ("a", "b", "a", "c"):
            assert (await client.post(CHAT, json=ask(model))).status_code == 200
        assert factory.stopped() == ["b"]  # a was used after b
        assert (await client.post(CHAT, json=ask("b"))).status_code == 200
        assert factory.stopped() == ["b", "a"]
        assert await states(client) == {"a": "STOPPED", "b": "STARTED", "c": "STARTED"}


async def test_a_busy_model_is_never_evicted() -> None:
    """Room for one model: a request for b waits until a's stream has finished."""
    slow = Script(["one", " two", " three", " four"], delay_s=0.1)
    factory = FakeFactory(script=slow)
    async with serving(TWO, factory, Limits(max_loaded=1)) as (client, pool):
        first = asyncio.ensure_future(client.post(CHAT, json=ask("a", stream=True)))
        await asyncio.sleep(0.15)  # a is loaded and streaming
        second = await client.post(CHAT, json=ask("b"))
        a = await first
        assert a.status_code == 200 and '"finish_reason":"stop"' in a.text.replace(" ", "")
        assert "error" not in a.text
        assert second.status_code == 200
        assert second.json()["choices"][0]["message"]["content"] == "one two three four"
        assert factory.events == ["start a", "stop a", "start b"]
        assert all(entry.leases == 0 for entry in pool.entries.values())


async def test_an_idle_model_is_unloaded_after_its_ttl(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[models.a]\npath = "a.gguf"\n[models.b]\npath = "b.gguf"\npinned = true\n',
        encoding="utf-8",
    )
    config = ServerConfig(models_file=str(models), model_ttl=0.2)
    factory = FakeFactory()
    async with serving(config, factory) as (client, _):
        assert factory.started() == ["b"]  # pinned: loaded at startup
        assert (await client.post(CHAT, json=ask("a"))).status_code == 200
        await asyncio.sleep(0.8)
        assert factory.stopped() == ["a"]  # the pinned one stays
        assert await states(client) == {"a": "STOPPED", "b": "STARTED"}
        metrics = (await client.get("/metrics")).text
        assert 'tether:model_unloads_total{model_name="a",reason="ttl"} 1.0' in metrics
        # Asked for again, it loads again.
        assert (await client.post(CHAT, json=ask("a"))).status_code == 200
        assert factory.started() == ["b", "a", "a"]


async def test_a_model_that_fails_to_load_fails_alone() -> None:
    config = ServerConfig(models=("bad=/m/bad.gguf", "good=/m/good.gguf"))
    factory = FakeFactory(broken={"bad": "llama.cpp could not load /m/bad.gguf (bad magic)"})
    now = [0.0]
    async with serving(config, factory, clock=lambda: now[0]) as (client, _):
        bad = await client.post(CHAT, json=ask("bad"))
        assert bad.status_code == 503
        error = bad.json()["error"]
        assert error["code"] == "model_unavailable"
        assert "'bad' could not be loaded" in error["message"]
        assert "bad magic" in error["message"]
        good = await client.post(CHAT, json=ask("good"))
        assert good.status_code == 200
        cards = {card["id"]: card for card in (await client.get("/v1/models")).json()}
        assert cards["bad"]["state"] == "ERROR"
        assert "bad magic" in cards["bad"]["load_error"]
        # Asked again at once, it is not tried again (each try could evict others).
        again = await client.post(CHAT, json=ask("bad"))
        assert again.status_code == 503 and "bad magic" in again.json()["error"]["message"]
        metrics = (await client.get("/metrics")).text
        assert 'tether:model_load_failures_total{model_name="bad"} 1.0' in metrics
        assert 'tether:model_loads_total{model_name="good"} 1.0' in metrics
        # Later, the next request tries again (the file may have been fixed).
        factory.broken.clear()
        now[0] += 11
        assert (await client.post(CHAT, json=ask("bad"))).status_code == 200


async def test_a_missing_file_is_a_503_that_names_it() -> None:
    config = ServerConfig(models=("gone=/m/missing.gguf", "good=/m/good.gguf"))
    async with serving(config, FakeFactory()) as (client, _):
        response = await client.post(CHAT, json=ask("gone"))
        assert response.status_code == 503
        assert "no GGUF file at '/m/missing.gguf'" in response.json()["error"]["message"]


async def test_the_memory_budget_evicts_and_refuses() -> None:
    config = ServerConfig(models=("a=/a.gguf", "b=/b.gguf", "huge=/h.gguf"))
    factory = FakeFactory(sizes={"a": 6 * GIB, "b": 6 * GIB, "huge": 12 * GIB})
    async with serving(config, factory, Limits(memory_bytes=10 * GIB)) as (client, _):
        assert (await client.post(CHAT, json=ask("a"))).status_code == 200
        assert (await client.post(CHAT, json=ask("b"))).status_code == 200
        assert factory.stopped() == ["a"]  # 6 + 6 GiB would not fit in 10
        huge = await client.post(CHAT, json=ask("huge"))
        assert huge.status_code == 503
        assert "over the budget of 10.00 GiB" in huge.json()["error"]["message"]
        assert factory.stopped() == ["a"]  # nothing unloaded for a model that cannot fit


async def test_the_machine_s_available_memory_is_checked() -> None:
    factory = FakeFactory(sizes={"a": 3 * GIB})
    async with serving(TWO, factory, available=lambda: 2 * GIB) as (client, _):
        response = await client.post(CHAT, json=ask("a"))
        assert response.status_code == 503
        assert "the machine has 2.00 GiB available" in response.json()["error"]["message"]


async def test_requests_waiting_for_a_load_count_toward_max_queue() -> None:
    config = ServerConfig(models=("a=/a.gguf", "b=/b.gguf"), max_queue=2)
    async with serving(config, FakeFactory(load_s=0.3)) as (client, _):
        responses = await asyncio.gather(*(client.post(CHAT, json=ask("a")) for _ in range(4)))
        codes = sorted(response.status_code for response in responses)
        assert codes == [200, 200, 503, 503]
        refused = next(r for r in responses if r.status_code == 503)
        assert "waiting for model 'a' to load" in refused.json()["error"]["message"]


async def test_the_default_model_serves_requests_that_name_none() -> None:
    config = ServerConfig(models=("a=/a.gguf", "b=/b.gguf"), default_model="b")
    async with serving(config, FakeFactory()) as (client, _):
        response = await client.post(CHAT, json=ask(None))
        assert response.status_code == 200
        assert response.json()["model"] == "b"


async def test_without_a_default_a_request_must_name_its_model() -> None:
    async with serving(TWO, FakeFactory()) as (client, _):
        missing = await client.post(CHAT, json=ask(None))
        unknown = await client.post(CHAT, json=ask("c"))
    for response in (missing, unknown):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "model_not_available"
        assert "'a', 'b'" in response.json()["error"]["message"]


async def test_aliases_are_listed_and_answer_under_the_model_s_name() -> None:
    config = ServerConfig(models=("small=/s.gguf",), aliases=("gpt-4o-mini=small",))
    async with serving(config, FakeFactory()) as (client, _):
        cards = (await client.get("/v1/models", headers={"user-agent": "OpenAI/Python"})).json()
        listed = {card["id"]: card["root"] for card in cards["data"]}
        assert listed == {"small": "small", "gpt-4o-mini": "small"}
        response = await client.post(CHAT, json=ask("gpt-4o-mini"))
        assert response.json()["model"] == "small"


async def test_every_lease_is_released() -> None:
    """Whatever way a request ends, its model is idle again after it."""
    factory = FakeFactory(script=Script(["Hello", " world"], delay_s=0.01))
    async with serving(TWO, factory) as (client, pool):
        await client.post(CHAT, json=ask("a"))
        await client.post(CHAT, json=ask("a", stream=True))
        await client.post(CHAT, json=ask("a", max_tokens=100_000))  # the engine's 400
        await client.post(CHAT, json=ask("a", response_format={"type": "json_schema"}))
        await client.post(COMPLETIONS, json={"model": "a", "prompt": "x", "stream": True})
        entry = pool.entries["a"]
        assert (entry.leases, entry.waiting) == (0, 0)


async def test_metrics_carry_the_model_s_name() -> None:
    async with serving(TWO, FakeFactory()) as (client, _):
        await client.post(CHAT, json=ask("b"))
        metrics = (await client.get("/metrics")).text
    assert 'tether:time_to_first_token_seconds_count{model_name="b"} 1.0' in metrics
    assert 'tether:model_loaded{model_name="a"} 0.0' in metrics
    assert 'tether:model_loaded{model_name="b"} 1.0' in metrics
    assert 'tether:num_requests_running{model_name="b"}' in metrics


async def test_a_model_served_by_its_base_keeps_the_base_loaded() -> None:
    """A vLLM LoRA adapter runs on its base's engine: loading it loads the base, and the
    base is not evicted while the adapter is resident."""
    config = ServerConfig(models=("base=/m/base.gguf", "other=/m/o.gguf"), loras=("tuned=/l@base",))
    factory = FakeFactory()
    async with serving(config, factory, Limits(max_loaded=2)) as (client, pool):
        assert (await client.post(CHAT, json=ask("tuned"))).status_code == 200
        assert factory.started() == ["base", "tuned"]
        assert pool.entries["base"].leases == 1  # held by the adapter
        assert (await client.post(CHAT, json=ask("other"))).status_code == 200
        assert factory.stopped() == ["tuned"]  # the base was busy: the adapter went
        assert pool.entries["base"].leases == 0
        assert (await client.post(CHAT, json=ask("tuned"))).status_code == 200
        assert factory.stopped() == ["tuned", "other"]


async def test_a_model_asked_for_while_it_unloads_loads_once_the_unload_is_over() -> None:
    """A TTL unload whose engine takes a while to stop, and a request for the model
    meanwhile: the request gets a fresh engine, and the pool keeps track of it."""
    factory = FakeFactory(stop_s=0.3)
    async with serving(TWO, factory) as (client, pool):
        assert (await client.post(CHAT, json=ask("a"))).status_code == 200
        entry = pool.entries["a"]
        ModelControl(pool).set_ttl(entry, 0.05)
        for _ in range(100):
            if entry.state.value == "STOPPING":
                break
            await asyncio.sleep(0.01)
        assert entry.state.value == "STOPPING"
        ModelControl(pool).set_ttl(entry, 0)
        assert (await client.post(CHAT, json=ask("a"))).status_code == 200
        assert factory.events == ["start a", "stop a", "start a"]
        assert entry.state.value == "STARTED" and entry.loaded is not None
        assert entry.loaded.engine is factory.engines["a"]


async def test_an_adapter_that_cannot_fit_next_to_its_base_is_refused_not_stuck() -> None:
    config = ServerConfig(models=("base=/m/base.gguf",), loras=("tuned=/l@base",))
    factory = FakeFactory()
    async with serving(config, factory, Limits(max_loaded=1)) as (client, pool):
        response = await asyncio.wait_for(client.post(CHAT, json=ask("tuned")), timeout=10)
        assert response.status_code == 503
        assert "no room" in response.json()["error"]["message"]
        assert pool.entries["base"].leases == 0
        assert (await client.post(CHAT, json=ask("base"))).status_code == 200


async def test_a_load_that_could_never_fit_unloads_nothing() -> None:
    factory = FakeFactory(sizes={"a": GIB, "b": 4 * GIB})
    async with serving(TWO, factory, available=lambda: 2 * GIB) as (client, _):
        assert (await client.post(CHAT, json=ask("a"))).status_code == 200
        refused = await client.post(CHAT, json=ask("b"))
        assert refused.status_code == 503
        message = refused.json()["error"]["message"]
        assert "it needs 4.00 GiB, the machine has 2.00 GiB available" in message
        assert factory.stopped() == []  # a stays: unloading it would not have made room


async def test_shutting_down_ends_requests_waiting_for_a_load() -> None:
    from tether.engine.errors import EngineShutdownError

    factory = FakeFactory(load_s=5.0)
    async with serving(TWO, factory) as (client, pool):
        waiting = asyncio.ensure_future(client.post(CHAT, json=ask("a")))
        await asyncio.sleep(0.1)
        pool.end_all(EngineShutdownError("The server is shutting down."))
        response = await asyncio.wait_for(waiting, timeout=2)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "server_shutdown"


async def test_stopping_a_model_while_it_starts_leaves_it_stopped() -> None:
    factory = FakeFactory(load_s=0.2)
    async with serving(TWO, factory) as (_, pool):
        entry = pool.entries["a"]
        ModelControl(pool).start_model(entry)
        await asyncio.sleep(0.05)
        await ModelControl(pool).stop_model(entry)
        assert entry.state.value == "STOPPED"
        assert factory.events == ["start a", "stop a"]


async def test_a_model_whose_engine_died_is_loaded_again() -> None:
    factory = FakeFactory()
    async with serving(TWO, factory) as (client, _):
        assert (await client.post(CHAT, json=ask("a"))).status_code == 200
        factory.engines["a"].ready = False  # its engine thread crashed
        assert (await client.post(CHAT, json=ask("a"))).status_code == 200
        assert factory.events == ["start a", "stop a", "start a"]
