"""CPU used by the servers under test, and by processes that are not the benchmark's, during a
measurement.

The machine may be shared (other test runs): every measurement records how much CPU the rest of
the machine took meanwhile, and waits (bounded) for a quiet moment before it starts. CPU per
request is measured from the server's own process tree (``tree_seconds``), which other processes
cannot inflate: on a shared machine it is a steadier figure than requests/s.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    guest = sum(values[8:10]) if len(values) > 9 else 0  # already counted in user/nice
    return (sum(values) - idle - guest) / _TICK


def _process_table() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds of the process and its reaped children)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        rest = text[text.rfind(")") + 2 :].split()
        ppid = int(rest[1])
        cpu = sum(int(v) for v in rest[11:15]) / _TICK  # utime stime cutime cstime
        table[int(entry)] = (ppid, cpu)
    return table


def _own_seconds() -> float:
    """CPU of this process and every live descendant (wrk's is in our cutime once reaped)."""
    return tree_seconds(os.getpid())


@dataclass
class Snapshot:
    at: float
    busy: float
    own: float

    @classmethod
    def take(cls) -> Snapshot:
        return cls(time.monotonic(), _busy_seconds(), _own_seconds())


def foreign_cores(start: Snapshot, end: Snapshot) -> float:
    """Average number of cores the rest of the machine used between two snapshots."""
    wall = end.at - start.at
    if wall <= 0:
        return 0.0
    return max(0.0, ((end.busy - start.busy) - (end.own - start.own)) / wall)


def wait_quiet(*, threshold: float = 0.1, window: float = 0.5, max_wait: float = 30.0) -> float:
    """Wait until the rest of the machine uses less than ``threshold`` cores over ``window``
    seconds; give up after ``max_wait``. Returns the last reading."""
    deadline = time.monotonic() + max_wait
    while True:
        start = Snapshot.take()
        time.sleep(window)
        load = foreign_cores(start, Snapshot.take())
        if load < threshold or time.monotonic() > deadline:
            return load


def tree_seconds(pid: int) -> float:
    """CPU seconds (utime + stime, and those of reaped children) of ``pid`` and every live
    descendant: a server's own cost, workers included (uvicorn --workers, nginx workers)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(child)
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        if current in table:
            total += table[current][1]
        stack.extend(children.get(current, ()))
    return total
