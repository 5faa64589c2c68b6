"""Together's model-management API over the pool: ``together`` 3.x's v2 endpoints and
deployments (driven by the SDK itself, with strict response validation), the v1
dedicated endpoints of the OpenAPI spec and the TypeScript SDK, and the hardware lists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import together
from together import AsyncTogether

from tests.pool.fakes import FakeFactory
from tether.api.app import create_app
from tether.config import ServerConfig
from tether.pool.pool import Limits, ModelPool
from tether.pool.spec import model_table

CONFIG = ServerConfig(
    models=("small=/m/small.gguf", "google/gemma-3-270m=/m/gemma.gguf"),
    aliases=("gpt-4o-mini=small",),
)


@asynccontextmanager
async def managed(
    factory: FakeFactory, base: str = "http://tether"
) -> AsyncIterator[tuple[AsyncTogether, httpx.AsyncClient, ModelPool]]:
    pool = ModelPool(model_table(CONFIG), factory, Limits(), available=lambda: 1 << 40)
    app = create_app(pool, CONFIG)
    await pool.start()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether")
    sdk = AsyncTogether(
        api_key="k",
        base_url=base,
        project_id="my-project",
        http_client=http,
        max_retries=0,
        _strict_response_validation=True,
    )
    try:
        yield sdk, http, pool
    finally:
        await http.aclose()
        await pool.stop()


async def settle(pool: ModelPool, name: str) -> None:
    """Until a model started in the background is loaded (or failed)."""
    for _ in range(200):
        if pool.entries[name].state.value in ("STARTED", "ERROR"):
            return
        await asyncio.sleep(0.01)


async def test_the_sdk_lists_endpoints_and_their_deployments() -> None:
    async with managed(FakeFactory()) as (sdk, _, _):
        endpoints = [endpoint async for endpoint in sdk.endpoints.list()]
        assert [e.name for e in endpoints] == ["small", "google/gemma-3-270m"]
        [deployment] = endpoints[0].deployments
        assert deployment.state == "DEPLOYMENT_STATE_STOPPED"
        assert deployment.api_model_id == "small"
        one = await sdk.endpoints.retrieve("google/gemma-3-270m")  # a name with a slash
        assert one.project_id == "my-project"
        page = await sdk.endpoints.deployments.list("small")
        assert [d.status.state for d in page.data] == ["DEPLOYMENT_STATE_STOPPED"]
        # An alias reaches the model it names.
        assert (await sdk.endpoints.retrieve("gpt-4o-mini")).name == "small"


async def test_the_sdk_starts_and_stops_a_model() -> None:
    factory = FakeFactory()
    async with managed(factory) as (sdk, http, pool):
        started = await sdk.endpoints.deployments.update(
            "local", endpoint_id="small", autoscaling={"min_replicas": 1, "max_replicas": 1}
        )
        assert started.autoscaling.min_replicas == 1  # pinned
        await settle(pool, "small")
        deployment = await sdk.endpoints.deployments.retrieve("local", endpoint_id="small")
        assert deployment.status.state == "DEPLOYMENT_STATE_READY"
        assert factory.started() == ["small"]
        card = next(c for c in (await http.get("/v1/models")).json() if c["id"] == "small")
        assert card["state"] == "STARTED"

        stopped = await sdk.endpoints.deployments.update(
            "local", endpoint_id="small", autoscaling={"min_replicas": 0, "max_replicas": 0}
        )
        assert stopped.status.state == "DEPLOYMENT_STATE_STOPPED"
        assert factory.stopped() == ["small"]
        # Stopped is not gone: a request for it loads it again.
        body = {"model": "small", "messages": [{"role": "user", "content": "hi"}]}
        assert (await http.post("/v1/chat/completions", json=body)).status_code == 200


async def test_the_inactive_timeout_is_the_model_s_ttl() -> None:
    async with managed(FakeFactory()) as (sdk, _, pool):
        updated = await sdk.endpoints.deployments.update(
            "local", endpoint_id="small", inactive_timeout=30
        )
        assert updated.inactive_timeout == 30
        assert pool.entries["small"].ttl_s == 1800.0


async def test_clients_cannot_make_the_server_load_a_file() -> None:
    async with managed(FakeFactory()) as (sdk, http, _):
        try:
            await sdk.endpoints.create(name="/etc/passwd")
        except together.PermissionDeniedError as exc:
            assert "not in this server's configuration" in str(exc)
        else:
            raise AssertionError("an unconfigured endpoint was created")
        response = await http.post("/v1/endpoints", json={"model": "evil.gguf"})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        missing = await http.get("/v1/endpoints/nonesuch")
        assert missing.status_code == 404


async def test_the_hardware_is_this_machine() -> None:
    async with managed(FakeFactory()) as (sdk, http, _):
        [hardware] = (await sdk.endpoints.hardware.list()).data
        assert hardware.gpu_count == 0
        v1 = (await http.get("/v1/hardware")).json()
        assert v1["object"] == "list"
        assert v1["data"][0]["specs"]["gpu_count"] == 0


async def test_v1_endpoints_start_and_stop_by_state() -> None:
    factory = FakeFactory()
    async with managed(factory) as (_, http, pool):
        listed = (await http.get("/v1/endpoints")).json()
        assert listed["object"] == "list"
        assert {e["id"]: e["state"] for e in listed["data"]} == {
            "small": "STOPPED",
            "google/gemma-3-270m": "STOPPED",
        }
        patched = await http.patch("/v1/endpoints/small", json={"state": "STARTED"})
        assert patched.status_code == 200
        assert patched.json()["state"] in ("STARTING", "STARTED")
        await settle(pool, "small")
        endpoint = (await http.get("/v1/endpoints/small")).json()
        assert endpoint["state"] == "STARTED"
        assert endpoint["autoscaling"] == {"min_replicas": 0, "max_replicas": 1}
        stopped = await http.patch("/v1/endpoints/small", json={"state": "STOPPED"})
        assert stopped.json()["state"] == "STOPPED"
        bad = await http.patch("/v1/endpoints/small", json={"state": "PAUSED"})
        assert bad.status_code == 400
        assert (await http.delete("/v1/endpoints/small")).status_code == 204


async def test_a_busy_model_stops_once_its_requests_are_done() -> None:
    from tests.api.fake_engine import Script

    factory = FakeFactory(script=Script(["a", "b", "c", "d"], delay_s=0.05))
    async with managed(factory) as (_, http, pool):
        body = {"model": "small", "messages": [{"role": "user", "content": "hi"}]}
        request = asyncio.ensure_future(http.post("/v1/chat/completions", json=body))
        await asyncio.sleep(0.08)
        await http.patch("/v1/endpoints/small", json={"state": "STOPPED"})
        answer = await request
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["content"] == "abcd"
        for _ in range(100):
            if pool.entries["small"].state.value == "STOPPED":
                break
            await asyncio.sleep(0.02)
        assert factory.stopped() == ["small"]


async def test_an_inactive_timeout_past_a_year_is_a_400() -> None:
    async with managed(FakeFactory()) as (_, http, _):
        for body in ({"inactive_timeout": 10**400}, {"inactive_timeout": 10**9}, {"state": 3}):
            response = await http.patch("/v1/endpoints/small", json=body)
            assert response.status_code == 400, body
        assert (await http.get("/v1/endpoints/small")).status_code == 200
