"""The gateway's own per-request code, in process, without sockets: what items of issue 17 change
(admission, header filtering, the log phase), measured where a shared machine cannot blur it.

    python -m bench.phases                       # thread CPU µs per request, public and key route
    python -m bench.phases --requests 2000 --mode key     # one mode, e.g. under callgrind:
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.phases --mode key --requests 1000

Per request: ``RequestContext.from_scope`` → ``Admission.admit`` (match, authenticate with an
API key on the key route, the limiter replaced by a no-op: it is Redis work, measured by
``make bench``) → the upstream's response headers filtered → ``accesslog.emit`` (metrics and, on
the key route, the JSON access line to /dev/null through the logging configuration the project
uses). No forwarding: that is the HTTP client's share. Instruction counts are stable where CPU
time is not: run it with two request counts under callgrind and divide the difference in
``Ir`` by the difference in requests, so start-up cancels out. It uses only interfaces older
versions have too, so an exported older tree runs it (``PYTHONSAFEPATH=1 PYTHONPATH=/tmp/base``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Coroutine
from typing import Any, cast

from apigw.ecsjson import EcsFormatter, RedactSecrets
from proxy.gateway import accesslog, apikeys
from proxy.gateway.auth import Authenticator
from proxy.gateway.headers import filter_response_headers
from proxy.gateway.iprules import ClientAddress
from proxy.gateway.pipeline import Admission
from proxy.gateway.snapshot import Snapshot
from proxy.gateway.spec import SnapshotData
from proxy.gateway.vocabulary import RedisKeys

PEPPER = b"bench-phases-pepper"
KEY = "gw_abcdefgh_" + "S" * 32
UPSTREAM_HEADERS = [
    (b"Server", b"nginx/1.22.1"),
    (b"Date", b"Mon, 30 Nov 2026 01:00:00 GMT"),
    (b"Content-Type", b"application/json"),
    (b"Content-Length", b"194"),
    (b"Connection", b"keep-alive"),
]


def snapshot() -> Snapshot:
    route = {"upstream": "bench", "path_type": "prefix"}
    data = {
        "upstreams": [{"name": "bench", "targets": [{"url": "http://127.0.0.1:8080", "weight": 1}]}],
        "routes": [
            {**route, "id": 1, "name": "public", "path": "/public", "auth": "public"},
            {**route, "id": 2, "name": "keyed", "path": "/api", "auth": "key", "product": "smart"},
        ],
        "plans": [{"slug": "basic", "scope": "key", "limits": {}, "quotas": {}}],
        "partners": [{"id": 1, "slug": "acme", "status": "active", "subscriptions": {"smart": "basic"}}],
        "keys": [{"id": 1, "prefix": "abcdefgh", "hash": apikeys.digest(PEPPER, KEY), "partner": 1}],
    }
    return Snapshot.compile(cast(SnapshotData, data), 1)


class NoLimiter:
    """The limiter's place in the pipeline, without Redis."""

    async def check(self, ctx: Any, check: Any) -> None:
        ctx.limit_outcome = "allowed"

    def record_response(self, ctx: Any) -> None:
        pass


def scope(path: str, key: bool) -> dict[str, Any]:
    headers = [
        (b"host", b"api.example.com"),
        (b"user-agent", b"wrk"),
        (b"accept", b"*/*"),
    ]
    if key:
        headers.append((b"x-api-key", KEY.encode()))
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never waits (nothing here does I/O) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the pipeline waited for something")


def configure_access_log(enabled: bool) -> None:
    """What settings.LOGGING gives the gateway: stdout's handler (the batch writer where this
    version has it) with the ECS formatter; here writing to /dev/null."""
    logger = logging.getLogger("apigw.access")
    logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.WARNING)
    stream = open(os.devnull, "w")  # lives as long as the process
    try:
        from proxy.gateway.logwriter import BatchedStreamHandler

        handler: logging.Handler = BatchedStreamHandler(stream)
    except ImportError:  # before the batch writer
        handler = logging.StreamHandler(stream)
    handler.setFormatter(EcsFormatter())
    handler.addFilter(RedactSecrets())
    logger.handlers = [handler]
    start = getattr(accesslog, "start", None)
    if start is not None:
        start()


def measure(mode: str, requests: int) -> float:
    from proxy.gateway.context import RequestContext

    snap = snapshot()
    admission = Admission(
        authenticator=Authenticator(PEPPER),
        keys=RedisKeys("bench:"),
        client_ips=ClientAddress(()),
        via="apigw",
        limiter=cast(Any, NoLimiter()),
    )
    key = mode == "key"
    configure_access_log(enabled=key)
    request = scope("/api/v1/appliances" if key else "/public/x", key)
    started = time.thread_time()
    for _ in range(requests):
        ctx = RequestContext.from_scope(request)
        admitted = run_now(admission.admit(ctx, snap))
        ctx.target = admitted.upstream.targets[0]
        ctx.upstream_started = time.perf_counter()
        filter_response_headers(UPSTREAM_HEADERS)
        ctx.status, ctx.bytes_sent, ctx.response_started = 200, 194, True
        ctx.upstream_finished = time.perf_counter()
        accesslog.emit(ctx)
    return (time.thread_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("public", "key", "both"), default="both")
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    for mode in ("public", "key") if args.mode == "both" else (args.mode,):
        measure(mode, min(args.requests, 1000))  # warm the caches (metrics children, strftime)
        print(f"{mode:6} {measure(mode, args.requests):6.2f} µs/request (thread CPU)")


if __name__ == "__main__":
    main()
