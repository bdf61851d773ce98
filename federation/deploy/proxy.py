"""The Fleet proxy: the only door from the sites to the aggregator.

In Flower 1.41 one SuperLink port serves the Fleet API (``/v1/fleet/*``, what SuperNodes
use), the Control API (``/v1/control/*``: start runs, i.e. push code to every hospital;
unauthenticated in the open-source edition), the ServerApp runtime API (``/v1/runtime/*``),
``/health`` and ``/docs``. The SuperLink is therefore bound to 127.0.0.1 and this proxy,
terminating TLS with the consortium certificate, forwards ``/v1/fleet/*`` and answers 403 to
everything else. Headers (node-authentication signature included) and bodies pass unchanged.

Before any authentication, what a client can make the proxy hold is bounded (:class:`ProxyLimits`):
body size (request and response: twice the largest model of any preset, plus 1 MiB), requests
in flight (503 beyond) and the time to send a body (408 beyond); a malformed Fleet path (e.g.
``/v1/fleet/%00``) gets 400, never an unhandled error.

Run: ``python -m federation.deploy.proxy --listen HOST:PORT --upstream https://127.0.0.1:P
--ca ca.crt --cert server.pem --key server.key``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

logger = logging.getLogger(__name__)

ALLOWED_PREFIX = "/v1/fleet/"
# A Fleet API path: /v1/fleet/ then one or more plain segments (Flower's are like pull-messages).
_FLEET_PATH = re.compile(r"/v1/fleet(/[A-Za-z0-9_-]+)+")
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones httpx/uvicorn recompute.
_DROP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                   "trailer", "transfer-encoding", "upgrade", "host", "content-length"})
MAX_CONCURRENT = 32  # requests in flight; the proxy holds at most this many bodies in memory
BODY_TIMEOUT_S = 60.0  # to receive a whole request body (a slow sender holds a slot meanwhile)
BODY_MARGIN = 2.0  # x the largest model: protobuf framing, and a message carrying whole arrays
BODY_SLACK = 1 << 20  # plus 1 MiB for the smallest models' metadata


@dataclass(frozen=True)
class ProxyLimits:
    """What one client can make the proxy hold, before any authentication.

    Parameters
    ----------
    max_body_bytes : int
        Largest request or response body; larger ones get 413 / 502 without being read whole.
        (default: :func:`default_max_body_bytes`)
    max_concurrent : int
        Requests in flight; more get 503 at once. (default: 32)
    body_timeout_s : float
        Seconds to receive a request body; slower ones get 408. (default: 60)
    upstream_timeout_s : float
        Seconds for the SuperLink to answer. (default: 300)
    """

    max_body_bytes: int
    max_concurrent: int = MAX_CONCURRENT
    body_timeout_s: float = BODY_TIMEOUT_S
    upstream_timeout_s: float = 300.0


def default_max_body_bytes() -> int:
    """``BODY_MARGIN`` x the bytes of the largest model of any preset and task, plus 1 MiB."""
    from client_site.tasks import FINETUNE, PRETRAIN, build_model
    from federation.presets import PRESETS

    largest = max(sum(t.numel() * t.element_size() for t in build_model(task, preset.model).state_dict().values())
                  for preset in PRESETS.values() for task in (PRETRAIN, FINETUNE))
    return int(BODY_MARGIN * largest) + BODY_SLACK


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    return await _bounded(request.stream(), limit)


async def _bounded(stream: AsyncIterator[bytes], limit: int) -> bytes:
    """All of ``stream``, or :class:`_TooLarge` as soon as it passes ``limit`` bytes."""
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(upstream: str, *, ca_file: str | None, limits: ProxyLimits,
              transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """A Starlette app forwarding ``/v1/fleet/*`` to ``upstream`` within ``limits``, refusing the rest.

    ``transport`` replaces the network transport to ``upstream`` (tests).
    """
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    state: dict[str, httpx.AsyncClient] = {}
    slots = asyncio.Semaphore(limits.max_concurrent)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        state["client"] = httpx.AsyncClient(base_url=upstream, verify=verify, transport=transport,
                                            timeout=limits.upstream_timeout_s)
        yield
        await state["client"].aclose()

    async def forward(request: Request) -> Response:
        path = request.url.path
        client = request.client.host if request.client else "?"
        if not path.startswith(ALLOWED_PREFIX) or ".." in path:
            logger.warning("refused %s %r from %s", request.method, path, client)
            return PlainTextResponse("forbidden: only the Fleet API is exposed\n", status_code=403)
        if not _FLEET_PATH.fullmatch(path):
            logger.warning("malformed Fleet path %r from %s", path, client)
            return PlainTextResponse("bad request: malformed Fleet API path\n", status_code=400)
        if slots.locked():
            logger.warning("busy: %d requests in flight; refused %s from %s", limits.max_concurrent, path, client)
            return PlainTextResponse("busy, retry later\n", status_code=503, headers={"retry-after": "1"})
        async with slots:
            return await _forward(request, path, client)

    async def _forward(request: Request, path: str, client: str) -> Response:
        try:
            body = await asyncio.wait_for(_read_body(request, limits.max_body_bytes), limits.body_timeout_s)
        except _TooLarge:
            logger.warning("request body over %d bytes refused from %s", limits.max_body_bytes, client)
            return PlainTextResponse("request body too large\n", status_code=413)
        except TimeoutError:
            logger.warning("request body not received within %gs from %s", limits.body_timeout_s, client)
            return PlainTextResponse("request body too slow\n", status_code=408)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        try:
            async with state["client"].stream(request.method, path, params=request.query_params,
                                              headers=headers, content=body) as upstream_response:
                content = await _bounded(upstream_response.aiter_bytes(), limits.max_body_bytes)
        except httpx.HTTPError as e:
            logger.error("upstream %s unreachable: %s", upstream, e)
            return PlainTextResponse("aggregator unavailable\n", status_code=502)
        except _TooLarge:
            logger.error("upstream answer to %s over %d bytes; not forwarded", path, limits.max_body_bytes)
            return PlainTextResponse("aggregator answer too large\n", status_code=502)
        out_headers = {k: v for k, v in upstream_response.headers.items() if k.lower() not in _DROP
                       and k.lower() != "content-encoding"}
        return Response(content, status_code=upstream_response.status_code, headers=out_headers)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    """Serve the proxy with TLS until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve on.")
    parser.add_argument("--upstream", required=True, help="https://127.0.0.1:PORT of the SuperLink.")
    parser.add_argument("--ca", required=True, help="CA certificate that signed the SuperLink's.")
    parser.add_argument("--cert", required=True, help="TLS certificate of the proxy (PEM).")
    parser.add_argument("--key", required=True, help="Its private key (PEM).")
    parser.add_argument("--max-body-mb", type=float, default=None,
                        help="Largest request/response body (default: twice the largest model, plus 1 MiB).")
    parser.add_argument("--max-concurrent", type=int, default=MAX_CONCURRENT, help="Requests in flight.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s fleet-proxy: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per forwarded request otherwise
    host, port = args.listen.rsplit(":", 1)
    max_body = int(args.max_body_mb * 2**20) if args.max_body_mb else default_max_body_bytes()
    limits = ProxyLimits(max_body_bytes=max_body, max_concurrent=args.max_concurrent)
    logger.info("limits: body %d bytes, %d requests in flight, body within %gs", limits.max_body_bytes,
                limits.max_concurrent, limits.body_timeout_s)
    uvicorn.run(build_app(args.upstream, ca_file=args.ca, limits=limits), host=host.strip("[]"), port=int(port),
                ssl_certfile=args.cert, ssl_keyfile=args.key, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
