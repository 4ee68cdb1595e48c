"""Prometheus multi-process mode, set up automatically for worker processes.

prometheus_client keeps metric values in process memory unless ``PROMETHEUS_MULTIPROC_DIR``
is set when it is first imported; then each process writes its values into mmap files there
and /metrics merges all the files, so one scrape reports the totals of every worker. The
directory must be shared by the workers of one server and must not hold files of an earlier
run (values would continue from them).

- ``PROMETHEUS_MULTIPROC_DIR`` set: used as given; whoever sets it clears it at start (the
  way gunicorn deployments do).
- Not set, and this process was started by ``multiprocessing`` (a ``uvicorn --workers N``
  worker, or the ``--reload`` child): a directory named after the parent process — its PID
  and start time, so a reused PID never picks up old files — under the temp directory.
  Directories of servers that are gone are removed.
- Otherwise (one process): nothing; the in-memory registry is already the whole truth.

``configure`` runs from settings.py, which every worker imports before anything imports
prometheus_client. See docs/metrics.md#several-worker-processes.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
ROOT_NAME = "apigw-prometheus"

log = logging.getLogger("apigw.metrics")


def configure(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Choose the directory (see the module docstring), export it, return it or None."""
    explicit = environ.get(ENV)
    if explicit:
        Path(explicit).mkdir(parents=True, exist_ok=True)
        return explicit
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return None
    if "prometheus_client.values" in sys.modules:
        # Too late to switch this process; its values would be missing from the merged scrape.
        log.warning("prometheus_client was imported before %s was set; metrics are per process", ENV)
        return None
    root = Path(tempfile.gettempdir()) / ROOT_NAME
    path = root / _server_id(parent.pid)
    path.mkdir(parents=True, exist_ok=True)
    environ[ENV] = str(path)
    remove_stale_servers(root, keep=path.name)
    prune_dead_workers(str(path))
    return str(path)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), "0" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    # Field 22; the command name (field 2) may contain spaces, so count from its closing ")".
    return stat.rsplit(")", 1)[1].split()[19]


def _server_id(pid: int) -> str:
    return f"{pid}-{_start_time(pid)}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_servers(root: Path, keep: str) -> None:
    for entry in root.iterdir():
        if entry.name == keep or not entry.is_dir():
            continue
        pid, _, _ = entry.name.partition("-")
        if pid.isdigit() and pid_alive(int(pid)) and _server_id(int(pid)) == entry.name:
            continue
        shutil.rmtree(entry, ignore_errors=True)


def prune_dead_workers(path: str) -> None:
    """Forget the ``live*`` gauge values of workers that have exited (what
    ``prometheus_client.multiprocess.mark_process_dead`` does, for every dead PID). Counters
    and histograms of exited workers stay: they are part of the totals."""
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = name.rsplit("_", 1)[1][: -len(".db")]
        if pid.isdigit() and not pid_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)
