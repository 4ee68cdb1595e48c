"""The access line written directly (accesslog.py's fast path) and the batch writer
(logwriter.py): the same JSON as the logging path on hostile values, lines out within the
interval, errors at once, a full queue drops and counts instead of blocking, and a graceful stop
(SIGTERM to a real gateway process) loses no line."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from apigw.ecsjson import EcsFormatter, RedactSecrets
from proxy.gateway import accesslog, logwriter
from proxy.gateway.auth import Identity, Key, Partner, Plan
from proxy.gateway.balancer import Target
from proxy.gateway.context import RequestContext
from proxy.gateway.routing import Route, RouteMatch
from tests import factories
from tests.observability.conftest import access_lines
from tests.servers import wait_until

HOSTILE = [
    '/q"uo"te',
    "/back\\slash\\",
    "/ctl\x00\x01\x1f\x7f\ttab\nnewline\rreturn",
    "/latin1-bytes-\xff\xfe\xc3\xa9",  # undecodable bytes arrive as latin-1 characters
    "/surrogate-\udc80\udcff",  # bytes a decoder smuggled through as surrogates
    "/unicode-é-☃-\U0001f600",
    "/</script>&'",
]


def context(path: str, user_agent: str | None) -> RequestContext:
    headers = {"user-agent": [user_agent]} if user_agent is not None else {}
    return RequestContext(
        method="GET",
        path=path,
        raw_path=b"",
        query_string=b"",
        raw_headers=[],
        headers=headers,
        host=path[1:9],
        scheme="http",
        client_ip="203.0.113.7",
        request_id=path[::-1],
        started=time.perf_counter() - 0.0123,
    )


def variants(path: str) -> Iterator[RequestContext]:
    """Every shape of line: unmatched 404, forwarded with identity, refused, WebSocket, no UA."""
    yield context(path, path)
    route = Route({"name": "r" + path, "path": "/", "upstream": "up" + path})
    forwarded = context(path, "agent " + path)
    forwarded.match = RouteMatch(route=route, params={}, tail="")
    forwarded.status, forwarded.bytes_sent, forwarded.limit_outcome = 200, 412, "allowed"
    forwarded.upstream_started = forwarded.started + 0.001
    forwarded.upstream_finished = forwarded.started + 0.0034567
    forwarded.target = Target.parse("http://10.0.3.7:8001")
    forwarded.identity = Identity(
        partner=Partner(id=1, slug="p" + path, status="active", subscriptions={}),
        key=Key(id=1, prefix="k" + path, hashed="", partner_id=1, products=None, expires=None),
        plan=Plan(slug="pl" + path, scope="key", rules=()),
        product="smart",
        method="key",
    )
    yield forwarded
    refused = context(path, None)
    refused.match = RouteMatch(route=route, params={}, tail="")
    refused.status, refused.error_code, refused.limit_outcome = 429, "rate_limited" + path, "rate_limited"
    yield refused
    socket = context(path, "ws")
    socket.match = RouteMatch(route=route, params={}, tail="")
    socket.status, socket.ws_messages_up, socket.ws_messages_down = 101, 3, 5
    socket.upstream_started, socket.upstream_finished = socket.started, socket.started + 2.0
    socket.host = ""
    yield socket


@pytest.fixture
def writer() -> Iterator[tuple[logwriter.BatchedStreamHandler, io.StringIO]]:
    """apigw.access → a batch writer with the JSON formatter, as settings.LOGGING wires stdout."""
    stream = io.StringIO()
    handler = logwriter.BatchedStreamHandler(stream, interval=0.05)
    handler.setFormatter(EcsFormatter())
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("apigw.access")
    saved = logger.handlers, logger.propagate, logger.level
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    yield handler, stream
    logger.handlers, logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])
    accesslog.stop()
    handler.close()


def only(handler: logging.Handler) -> None:
    """pytest's log capture attaches itself to non-propagating loggers for each test phase; the
    direct path rightly refuses to bypass another reader, so take it out."""
    logging.getLogger("apigw.access").handlers = [handler]


def written(handler: logwriter.BatchedStreamHandler, stream: io.StringIO) -> list[str]:
    handler.flush()
    lines = stream.getvalue().splitlines()
    stream.seek(0)
    stream.truncate()
    return lines


@pytest.mark.parametrize("path", HOSTILE)
def test_the_direct_line_is_the_logging_paths_json(writer: Any, path: str) -> None:
    handler, stream = writer
    only(handler)
    for ctx in variants(path):
        accesslog.stop()  # through logging (EcsFormatter)
        accesslog.emit(ctx)
        (slow,) = written(handler, stream)
        assert accesslog.start()  # directly
        accesslog.emit(ctx)
        (fast,) = written(handler, stream)
        assert fast.isascii()  # whatever the bytes, the line is ASCII JSON
        slow_fields, fast_fields = json.loads(slow), json.loads(fast)
        for fields in (slow_fields, fast_fields):
            assert fields["url"]["path"] == path
            del fields["@timestamp"], fields["event"]["duration"], fields["message"]
        assert fast_fields == slow_fields
        # Same keys in the same order, not just the same values.
        assert fast.split('"event"', 1)[1].split('"duration"')[0] == slow.split('"event"', 1)[1].split('"duration"')[0]
        assert list(json.loads(fast)) == list(json.loads(slow))


def test_direct_lines_only_when_the_json_batch_writer_is_the_only_reader(writer: Any) -> None:
    handler, _ = writer
    only(handler)
    assert accesslog.start()
    logger = logging.getLogger("apigw.access")
    extra = logging.StreamHandler(io.StringIO())
    logger.addHandler(extra)
    try:
        assert not accesslog.start()  # someone else reads these records: give them records
    finally:
        logger.removeHandler(extra)
    handler.setFormatter(logging.Formatter("%(message)s"))
    assert not accesslog.start()  # console format: the formatter decides


def test_lines_are_written_within_the_interval_and_warnings_at_once() -> None:
    reader, writer_fd = os.pipe()
    stream = os.fdopen(writer_fd, "w")
    handler = logwriter.BatchedStreamHandler(stream, interval=0.1)
    handler.start_batching()
    try:
        queued = time.monotonic()
        handler.write_line("first\n")
        os.set_blocking(reader, True)
        assert os.read(reader, 100) == b"first\n"
        assert time.monotonic() - queued < 2  # "within 100 ms" on a quiet machine; this one is shared

        slow = logwriter.BatchedStreamHandler(stream, interval=3600)  # would never wake by itself
        slow.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        slow.start_batching()
        slow.handle(logging.LogRecord("x", logging.INFO, __file__, 0, "info line", None, None))
        slow.handle(logging.LogRecord("x", logging.ERROR, __file__, 0, "error line", None, None))
        data = b""
        while b"error line" not in data:
            data += os.read(reader, 100)
        assert data == b"INFO info line\nERROR error line\n"  # in order, the error did not wait
        slow.close()
    finally:
        handler.close()
        stream.close()
        os.close(reader)


def test_outside_a_running_gateway_each_line_is_written_at_once() -> None:
    stream = io.StringIO()
    handler = logwriter.BatchedStreamHandler(stream, interval=3600)
    handler.handle(logging.LogRecord("x", logging.INFO, __file__, 0, "at once", None, None))
    assert stream.getvalue() == "at once\n"
    assert handler._thread is None  # no thread in processes that are not gateways


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    reader, writer_fd = os.pipe()
    stream = os.fdopen(writer_fd, "w")
    handler = logwriter.BatchedStreamHandler(stream, interval=0.01, capacity=100)
    handler.start_batching()
    dropped: list[int] = []
    handler.on_drop = lambda: dropped.append(1)
    line = "x" * 1000 + "\n"
    try:
        # Nobody reads the pipe (64 KiB): the writer thread blocks in write; the caller must not.
        started = time.monotonic()
        for _ in range(500):
            handler.write_line(line)
            time.sleep(0.001)
        assert time.monotonic() - started < 30
        assert handler.dropped > 0 and len(dropped) == handler.dropped
        # Reading again: everything that was not dropped comes out, whole lines.
        drain = threading.Thread(target=handler.flush)
        drain.start()
        received = b""
        os.set_blocking(reader, False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and received.count(b"\n") < 500 - handler.dropped:
            try:
                received += os.read(reader, 1 << 16)
            except BlockingIOError:
                time.sleep(0.01)
        drain.join(10)
        assert received.count(b"\n") == 500 - handler.dropped
        assert set(received.splitlines()) == {line.strip().encode()}
        handler.stop_batching()
        handler.write_line("after the stop\n")  # written at once, on this thread
        assert os.read(reader, 100) == b"after the stop\n"
    finally:
        handler.close()
        stream.close()
        os.close(reader)


def test_the_drop_counter_is_a_metric(writer: Any) -> None:
    handler, _ = writer
    only(handler)
    assert accesslog.start()
    before = REGISTRY.get_sample_value("apigw_log_lines_dropped_total") or 0.0
    handler.capacity = 0
    try:
        accesslog.emit(context("/dropped", None))
    finally:
        handler.capacity = logwriter.CAPACITY
    assert REGISTRY.get_sample_value("apigw_log_lines_dropped_total") == before + 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_graceful_stop_loses_no_line(demo_upstream: str, start_gateway: Any) -> None:
    upstream = factories.upstream(name="obs-stop", targets=[demo_upstream])
    factories.route(upstream=upstream, name="obs-stop", path="/api/v1", auth="public")
    base, proc = start_gateway()
    count = 300
    with httpx.Client(base_url=base, timeout=10) as client:
        statuses = [
            client.get("/api/v1/appliances", headers={"X-Request-ID": f"stop-{i}"}).status_code for i in range(count)
        ]
    assert statuses == [200] * count
    proc.stop(signal.SIGTERM)
    # uvicorn re-raises the signal once it shut down cleanly: -15 is the graceful exit.
    assert proc.proc is not None and proc.proc.returncode in (0, -signal.SIGTERM), proc.output()
    assert "Application shutdown complete" in proc.output()
    ids = [line["http"]["request"]["id"] for line in access_lines(proc)]
    assert ids == [f"stop-{i}" for i in range(count)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_running_gateway_writes_lines_without_being_stopped(demo_upstream: str, start_gateway: Any) -> None:
    upstream = factories.upstream(name="obs-live", targets=[demo_upstream])
    factories.route(upstream=upstream, name="obs-live", path="/api/v1", auth="public")
    base, proc = start_gateway()
    assert httpx.get(base + "/api/v1/appliances", timeout=10).status_code == 200
    wait_until(lambda: len(access_lines(proc)) == 1, timeout=5)
