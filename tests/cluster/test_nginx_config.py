"""The load balancer's generated configuration: nginx accepts it, and its access-log lines (which
instances a request tried, in order) parse back. Fast: part of `make test`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from localcluster.nginx import NGINX, AccessLine, render


def test_nginx_accepts_the_generated_configuration(tmp_path: Path) -> None:
    binary = NGINX if Path(NGINX).exists() else shutil.which("nginx")
    if binary is None:
        pytest.skip("nginx is not installed (scripts/system-deps.sh installs it)")
    config = tmp_path / "nginx.conf"
    config.write_text(render(tmp_path, [18001, 18002, 18003], port=18000))
    text = config.read_text()
    assert "proxy_next_upstream error timeout http_502 http_503;" in text
    assert "non_idempotent" not in text  # POST and PATCH are never sent twice
    assert text.count("max_fails=0") == 3
    checked = subprocess.run(
        [binary, "-p", str(tmp_path), "-c", str(config), "-e", str(tmp_path / "error.log"), "-t", "-q"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_an_access_line_names_every_instance_a_request_tried() -> None:
    retried = AccessLine.parse(
        '1796002053.980 200 0.012 "GET /slow/0.05" '
        'upstream="127.0.0.1:18001, 127.0.0.1:18002" upstream_status="502, 200" seq=42'
    )
    assert retried is not None
    assert retried.upstream_ports == (18001, 18002)
    assert retried.upstream_statuses == ("502", "200")
    assert (retried.status, retried.method, retried.seq) == (200, "GET", "42")
    local = AccessLine.parse('1796002053.980 200 0.000 "GET /lb-health" upstream="-" upstream_status="-" seq=-')
    assert local is not None and local.upstream_ports == () and local.seq == "-"
    assert AccessLine.parse("garbage") is None
