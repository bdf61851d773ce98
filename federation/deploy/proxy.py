"""The Fleet proxy: the only door from the sites to the aggregator.

In Flower 1.41 one SuperLink port serves the Fleet API (``/v1/fleet/*``, what SuperNodes
use), the Control API (``/v1/control/*``: start runs, i.e. push code to every hospital;
unauthenticated in the open-source edition), the ServerApp runtime API (``/v1/runtime/*``),
``/health`` and ``/docs``. The SuperLink is therefore bound to 127.0.0.1 and this proxy,
terminating TLS with the consortium certificate, forwards ``/v1/fleet/*`` and answers 403 to
everything else. Headers (node-authentication signature included) and bodies pass unchanged.

Run: ``python -m federation.deploy.proxy --listen HOST:PORT --upstream https://127.0.0.1:P
--ca ca.crt --cert server.pem --key server.key``
"""

from __future__ import annotations

import argparse
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

logger = logging.getLogger(__name__)

ALLOWED_PREFIX = "/v1/fleet/"
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones httpx/uvicorn recompute.
_DROP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                   "trailer", "transfer-encoding", "upgrade", "host", "content-length"})


def build_app(upstream: str, *, ca_file: str | None, timeout_s: float = 300.0) -> Starlette:
    """A Starlette app forwarding ``/v1/fleet/*`` to ``upstream`` and refusing the rest."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    state: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        state["client"] = httpx.AsyncClient(base_url=upstream, verify=verify, timeout=timeout_s)
        yield
        await state["client"].aclose()

    async def forward(request: Request) -> Response:
        path = request.url.path
        if not path.startswith(ALLOWED_PREFIX) or ".." in path:
            logger.warning("refused %s %s from %s", request.method, path,
                           request.client.host if request.client else "?")
            return PlainTextResponse("forbidden: only the Fleet API is exposed\n", status_code=403)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        try:
            upstream_response = await state["client"].request(
                request.method, path, params=request.query_params, headers=headers,
                content=await request.body())
        except httpx.HTTPError as e:
            logger.error("upstream %s unreachable: %s", upstream, e)
            return PlainTextResponse("aggregator unavailable\n", status_code=502)
        out_headers = {k: v for k, v in upstream_response.headers.items() if k.lower() not in _DROP
                       and k.lower() != "content-encoding"}
        return Response(upstream_response.content, status_code=upstream_response.status_code,
                        headers=out_headers)

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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s fleet-proxy: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per forwarded request otherwise
    host, port = args.listen.rsplit(":", 1)
    uvicorn.run(build_app(args.upstream, ca_file=args.ca), host=host.strip("[]"), port=int(port),
                ssl_certfile=args.cert, ssl_keyfile=args.key, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
