"""Log lines written in batches by a thread, off the event loop.

The stdout handler of every process (settings.LOGGING). A line is appended to a bounded queue
on the caller's thread (no syscall, no lock); a writer thread wakes every ``interval`` (100 ms),
writes what accumulated with one write and one flush, and sleeps again. Before, each access line
cost a ``write`` and a ``flush`` syscall on the event loop (≈ 20 µs of the ≈ 60 µs a line cost,
docs/benchmarks.md), and a slow stdout reader (a full pipe) stalled the loop with it.

- Lines at WARNING and above wake the writer at once: an error is not held back.
- Bounded: past ``capacity`` queued lines (stdout not read for a while), new lines are dropped
  and counted (``dropped``, ``on_drop``; the gateway exports it as
  ``apigw_log_lines_dropped_total``). Blocking instead would stall every request of the process
  behind the log reader; a gateway that answers and says it dropped lines is the better failure.
- Batching only while a gateway runs: the gateway's start-up turns it on (``start_batching``),
  its lifespan shutdown turns it off (``stop_batching``: everything queued is written at once,
  synchronously, and later lines go straight out). Every other process (management commands,
  uvicorn's supervisor, tests) writes each line at once, as a plain StreamHandler does: uvicorn
  ends a process stopped by SIGTERM by raising the signal again, so atexit handlers never run
  and a line still queued then would be lost. Lost on ``kill -9`` of a running gateway: at most
  the last ``interval`` of lines.

The thread is started with batching (and again in a forked child, where it does not exist).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import IO, Any

INTERVAL = 0.1
# ≈ 10 MB of access lines; at 5,000 requests/s a 100 ms batch is ≈ 500 lines.
CAPACITY = 16_384


class BatchedStreamHandler(logging.StreamHandler[IO[str]]):
    terminator = "\n"

    def __init__(self, stream: IO[str] | None = None, interval: float = INTERVAL, capacity: int = CAPACITY) -> None:
        super().__init__(stream if stream is not None else sys.stdout)
        self.interval = interval
        self.capacity = capacity
        self.dropped = 0
        self.on_drop: Callable[[], Any] | None = None
        # deque.append and popleft are atomic: callers never take a lock, and a line appended
        # while the writer drains is either in this batch or the next, never lost.
        self._queue: deque[str] = deque()
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batching = False
        os.register_at_fork(after_in_child=self._forget_thread)

    def write_line(self, line: str) -> None:
        """Queue one finished line (with its newline); it is written within ``interval``."""
        queue = self._queue
        if len(queue) >= self.capacity:
            self._drop()
            return
        queue.append(line)
        if not self.batching:
            self._drain()
        elif self._thread is None:
            self._start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        if len(self._queue) >= self.capacity:
            self._drop()
            return
        self._queue.append(line)
        if not self.batching:
            self._drain()
        elif self._thread is None:
            self._start()
        elif record.levelno >= logging.WARNING:
            self._wake.set()

    def start_batching(self) -> None:
        self.batching = True

    def stop_batching(self) -> None:
        """Write what is queued and every later line at once (the process is stopping)."""
        self.batching = False
        self._drain()

    def flush(self) -> None:
        """Write everything queued now, on the calling thread."""
        self._drain()

    def close(self) -> None:
        self._drain()
        self._closed = True
        self._wake.set()
        super().close()

    def _drop(self) -> None:
        self.dropped += 1
        if self.on_drop is not None:
            self.on_drop()

    def _start(self) -> None:
        with self._write_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
                self._thread.start()

    def _forget_thread(self) -> None:
        self._thread = None
        self._write_lock = threading.Lock()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        with self._write_lock:
            queue = self._queue
            count = len(queue)
            if not count:
                return
            pop = queue.popleft
            chunk = "".join([pop() for _ in range(count)])
            stream = self.stream
            try:
                stream.write(chunk)
                stream.flush()
            except Exception:  # stdout closed or broken: say so where logging says it, once a batch
                if logging.raiseExceptions and sys.stderr is not None:
                    sys.stderr.write(f"--- Logging error: {count} line(s) could not be written\n")


def batch_writer(logger: logging.Logger) -> BatchedStreamHandler | None:
    """The one handler records of ``logger`` reach, if it is a batch writer and nothing else
    (no other handler, no logger filter) would see them; else None."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        found.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    if len(found) == 1 and isinstance(found[0], BatchedStreamHandler):
        return found[0]
    return None
