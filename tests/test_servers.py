"""The tests' own redis-server: extra arguments, TLS, a cluster node, restarting empty on its port,
and stopping nothing but its own process."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tests.servers import ROOT, RedisServer, pings


def test_it_takes_extra_arguments_and_restarts_empty_on_its_port() -> None:
    server = RedisServer("--maxmemory", "2mb").start()
    client = redis.Redis.from_url(server.url, socket_connect_timeout=0.5)
    try:
        assert client.config_get("maxmemory") == {"maxmemory": str(2 * 1024 * 1024)}
        client.set("k", "v")
        port = server.port
        server.stop()
        assert not pings(client)
        server.start()
        assert server.port == port
        assert client.get("k") is None
    finally:
        client.close()
        server.stop()
    shared = redis.Redis.from_url(os.environ["REDIS_URL"])
    assert pings(shared)
    shared.close()


def test_a_cluster_node_keeps_its_files_out_of_the_checkout() -> None:
    server = RedisServer("--cluster-enabled", "yes").start()
    client = redis.Redis.from_url(server.url)
    try:
        assert client.info("cluster")["cluster_enabled"] == 1
        assert server.dir is not None
        assert (Path(server.dir) / "nodes.conf").exists()
        assert not (ROOT / "nodes.conf").exists()
    finally:
        client.close()
        server.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_with_a_certificate_it_serves_tls_only(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = RedisServer(tls_cert=cert, tls_key=key).start()
    tls_client = redis.Redis.from_url(server.url, **server.client_options)
    plain_client = redis.Redis(port=server.port, socket_timeout=1, socket_connect_timeout=1)
    try:
        assert server.url.startswith("rediss://")
        assert tls_client.ping()
        assert not pings(plain_client)
    finally:
        tls_client.close()
        plain_client.close()
        server.stop()
