"""The metrics directory of worker processes: chosen once per server, cleaned of what is gone.
(That two workers' counts add up in one scrape is tested end to end in test_metrics.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from apigw import multiproc


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_an_explicit_directory_is_used_as_given(tmp_path: Path) -> None:
    path = tmp_path / "metrics"
    environ = {multiproc.ENV: str(path)}
    assert multiproc.configure(environ) == str(path)
    assert path.is_dir()


def test_a_single_process_keeps_metrics_in_memory() -> None:
    environ: dict[str, str] = {}
    assert multiproc.configure(environ) is None
    assert environ == {}


def test_directories_of_servers_that_are_gone_are_removed(tmp_path: Path) -> None:
    mine = multiproc._server_id(os.getpid())
    for name in (mine, f"{dead_pid()}-123", f"{os.getpid()}-1", "not-a-server"):
        (tmp_path / name).mkdir()
    multiproc.remove_stale_servers(tmp_path, keep="unrelated")
    # A live PID with another start time is a reused PID: its directory is an old server's.
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine]


def test_live_gauges_of_exited_workers_are_forgotten_but_their_counts_stay(tmp_path: Path) -> None:
    gone = dead_pid()
    names = [
        f"gauge_livesum_{gone}.db",
        f"gauge_livemax_{gone}.db",
        f"counter_{gone}.db",
        f"histogram_{gone}.db",
        f"gauge_livesum_{os.getpid()}.db",
        f"gauge_mostrecent_{gone}.db",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    multiproc.prune_dead_workers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{gone}.db", f"histogram_{gone}.db", f"gauge_livesum_{os.getpid()}.db", f"gauge_mostrecent_{gone}.db"]
    )
