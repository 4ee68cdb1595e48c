"""``make cluster``: the platform as a local cluster until Ctrl-C (see localcluster/cluster.py).

    python -m localcluster [--instances 3] [--redis cluster|single] [--port 8080]
                           [--database-url postgres://postgres@127.0.0.1:5432/apigw_cluster]

The database is created on the machine's PostgreSQL if it is missing, migrated, and given the
demo configuration. Ctrl-C or SIGTERM stops everything it started, by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from localcluster.cluster import ROOT, LocalCluster

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/apigw_cluster"


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database ``url`` names if it does not exist (SQLite needs nothing)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        return
    import psycopg
    from psycopg import sql

    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def stable_secret_key(var_dir: Path) -> str:
    """One SECRET_KEY per checkout, kept in var/cluster/ (0600): the demo key's hash and admin
    sessions survive a restart of the cluster."""
    import secrets

    path = var_dir / "secret-key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=3, help="gateway processes (default %(default)s)")
    parser.add_argument(
        "--redis",
        choices=("cluster", "single"),
        default="cluster",
        help="a 3-primary Redis Cluster with a replica each, or one Redis (default %(default)s)",
    )
    parser.add_argument("--port", type=int, default=8080, help="nginx's port (default %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per instance")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args(argv)

    var_dir = ROOT / "var" / "cluster"
    ensure_database(args.database_url)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cluster = LocalCluster(
        args.instances,
        database_url=args.database_url,
        redis=args.redis,
        secret_key=stable_secret_key(var_dir),
        workers=args.workers,
        lb_port=args.port,
        prepare=True,
        var_dir=var_dir,
    )
    print(f"starting {args.instances} gateways, nginx, Redis ({args.redis}), the demo upstream ...", flush=True)
    with cluster.start():
        base = cluster.url
        key = next((line.split(": ", 1)[1] for line in cluster.demo_output.splitlines() if "API key" in line), "")
        admin = next((line.split(": ", 1)[1] for line in cluster.demo_output.splitlines() if "Admin login" in line), "")
        lines = [
            "",
            "The local cluster is running. Ctrl-C stops it.",
            f"Load balancer (nginx):  {base}",
            f"Gateway (demo API):     {base}/api/v1/appliances",
            f"Developer portal:       {base}/portal/",
            f"Django admin:           {base}/admin/   login {admin}",
            "Instances (direct):     " + "  ".join(f"{g.url} (pid {g.pid})" for g in cluster.gateways),
            f"Redis:                  {cluster.redis_url}",
            f"Database:               {cluster.database_url}",
            f"Demo upstream:          {cluster.demo_url}",
            f"Logs:                   {cluster.dir / 'logs'}",
            f"Demo API key:           {key}",
            f"Try it: curl -H 'Authorization: Bearer {key}' {base}/api/v1/appliances",
        ]
        print("\n".join(lines), flush=True)
        (var_dir / "running.json").write_text(json.dumps(cluster.describe(), indent=2) + "\n")
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(0.5):
                dead = [g for g in cluster.gateways if not g.alive()]
                if dead:
                    print(f"gateway {dead[0].index} exited; stopping:\n{dead[0].process and dead[0].process.output()}")
                    break
        print("stopping ...", flush=True)
    (var_dir / "running.json").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
