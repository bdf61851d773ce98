"""Threat: anyone who can reach the aggregator's Fleet port exhausts the Fleet proxy before any
authentication: huge request bodies read whole into memory, many requests at once, bodies sent
byte by byte to hold connections, or a malformed path (``/v1/fleet/%00``) that crashed the
handler with a 500.

Defence: the proxy bounds the body size (twice the largest model, plus 1 MiB; request and
response), the requests in flight (503 beyond) and the time to send a body (408 beyond), and
answers a malformed Fleet path with 400 (``federation/deploy/proxy.py``).
"""

import asyncio

import httpx
import pytest
from starlette.testclient import TestClient

from federation.deploy.proxy import ProxyLimits, build_app, default_max_body_bytes
from federation.presets import get_preset
from client_site.tasks import PRETRAIN, build_model

LIMITS = ProxyLimits(max_body_bytes=1000, max_concurrent=2, body_timeout_s=0.5)


def _echo_upstream(seen):
    async def handler(request):
        seen.append(request.url.path)
        return httpx.Response(200, content=b"ok")
    return httpx.MockTransport(handler)


@pytest.mark.parametrize("path", ["/v1/fleet/%00", "/v1/fleet/", "/v1/fleet/pull%20messages", "/v1/fleet/a//b"])
def test_a_malformed_fleet_path_gets_400_and_is_not_forwarded(path):
    seen = []
    app = build_app("https://aggregator", ca_file=None, limits=LIMITS, transport=_echo_upstream(seen))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post(path, content=b"x").status_code == 400
    assert seen == []


def test_a_body_over_the_limit_gets_413_and_is_not_forwarded():
    seen = []
    app = build_app("https://aggregator", ca_file=None, limits=LIMITS, transport=_echo_upstream(seen))
    with TestClient(app) as client:
        assert client.post("/v1/fleet/push-messages", content=b"x" * 1001).status_code == 413
        assert client.post("/v1/fleet/push-messages", content=b"x" * 1000).status_code == 200
    assert seen == ["/v1/fleet/push-messages"]


def test_an_upstream_answer_over_the_limit_is_not_forwarded():
    async def huge(request):
        return httpx.Response(200, content=b"x" * 5000)
    app = build_app("https://aggregator", ca_file=None, limits=LIMITS, transport=httpx.MockTransport(huge))
    with TestClient(app) as client:
        assert client.post("/v1/fleet/pull-object", content=b"").status_code == 502


def test_requests_beyond_the_concurrency_bound_get_503_and_a_slow_body_gets_408():
    release = asyncio.Event()

    async def slow_upstream(request):
        await release.wait()
        return httpx.Response(200, content=b"ok")

    async def scenario():
        app = build_app("https://aggregator", ca_file=None, limits=LIMITS,
                        transport=httpx.MockTransport(slow_upstream))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as c:
                held = [asyncio.create_task(c.post("/v1/fleet/pull-messages", content=b"x")) for _ in range(2)]
                await asyncio.sleep(0.2)  # both now wait on the upstream, holding the two slots
                refused = await c.post("/v1/fleet/pull-messages", content=b"x")
                release.set()
                answered = [r.status_code for r in await asyncio.gather(*held)]

                async def trickle():
                    yield b"x"
                    await asyncio.sleep(2)
                    yield b"y"
                slow = await c.post("/v1/fleet/push-messages", content=trickle())
        return refused.status_code, answered, slow.status_code

    refused, answered, slow = asyncio.run(scenario())

    assert (refused, answered, slow) == (503, [200, 200], 408)


def test_the_default_body_bound_is_derived_from_the_largest_model():
    demo = sum(t.numel() * t.element_size() for t in build_model(PRETRAIN, get_preset("demo").model).state_dict().values())

    assert 2 * demo < default_max_body_bytes() < 64 * 2**20
