"""The static upstream and the nginx reference proxy: configuration files for our own nginx.

Each nginx runs in the foreground (``daemon off``) with its own prefix directory, pid file and
error log, so it never touches the system's nginx; the orchestrator stops it by PID.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# A ~200-byte JSON reply, like a small appliance status document. No ``'`` or ``$``: it is
# embedded in an nginx ``return`` string.
BODY = json.dumps(
    {
        "appliance": "oven-7f3a9c21",
        "model": "HX-900",
        "state": "idle",
        "door": "closed",
        "temperature_c": 21.5,
        "program": None,
        "remaining_s": 0,
        "firmware": "4.12.1",
        "updated": "2024-11-27T18:00:00Z",
        "alerts": [],
    },
    separators=(",", ":"),
).encode()
assert 180 <= len(BODY) <= 220 and b"'" not in BODY and b"$" not in BODY

_COMMON = """daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
{body}
}}
"""

_STATIC = """    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}"""

_PROXY = """    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def _write(prefix: Path, body: str) -> Path:
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(_COMMON.format(prefix=prefix, body=body))
    return conf


def static_conf(prefix: Path, port: int) -> Path:
    """nginx ``return 200`` with the JSON body."""
    return _write(prefix, _STATIC.format(port=port, body=BODY.decode()))


def proxy_conf(prefix: Path, port: int, upstream_port: int) -> Path:
    """Scenario (b): nginx ``proxy_pass`` with a keep-alive upstream pool."""
    return _write(prefix, _PROXY.format(port=port, upstream_port=upstream_port))


def nginx_args(binary: str, prefix: Path, conf: Path) -> list[str]:
    # -e: the startup error log goes to our prefix too, not /var/log/nginx.
    return [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
