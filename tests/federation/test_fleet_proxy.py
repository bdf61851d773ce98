"""The Fleet proxy forwards /v1/fleet/* only; Control, runtime, /docs and /health get 403."""

import pytest
from starlette.testclient import TestClient

from federation.deploy.proxy import ProxyLimits, build_app


@pytest.fixture
def client():
    # Nothing listens upstream: a forwarded request ends as 502, a refused one as 403.
    with TestClient(build_app("https://127.0.0.1:1", ca_file=None, limits=ProxyLimits(max_body_bytes=1 << 20))) as test_client:
        yield test_client


@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/control/start-run"), ("POST", "/v1/control/list-runs"),
    ("POST", "/v1/runtime/acquire-task"), ("GET", "/docs"), ("GET", "/openapi.json"),
    ("GET", "/health"), ("POST", "/v1/fleet/../control/start-run"), ("GET", "/"),
])
def test_everything_but_the_fleet_api_is_refused(client, method, path):
    assert client.request(method, path).status_code == 403


def test_fleet_api_is_forwarded(client):
    assert client.post("/v1/fleet/pull-messages", content=b"\x00").status_code == 502
