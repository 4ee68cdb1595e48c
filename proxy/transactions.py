"""How control-plane writes share the database with each other (PostgreSQL).

Lock order: every admin API write, Django admin write (proxy/admin.py ``ConfigAdmin``) and config
apply first takes one advisory lock, ``config_lock()``: a config apply (or diff) exclusively, the
others shared. Applies then take turns with each other and never run interleaved with another
write, so the pair that used to deadlock (a diff inserting plans ``t-0 … t-39`` while ``POST
/plans/ {"name": "t-39", "slug": "t-0"}`` waited on the same unique indexes in the other order)
now queues instead. Shared holders still run side by side, and portal writes take no lock: the
few deadlocks or serialization failures left between those are retried (``retrying``), and one
that persists becomes ``Busy``, a 409 for the caller, never a 500.

SQLite has neither advisory locks nor deadlocks (one writer at a time): there the lock is a no-op.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, OperationalError, connection

log = logging.getLogger(__name__)

T = TypeVar("T")

CONFIG_LOCK_ID = 0x61706967  # "apig"
ATTEMPTS = 4
# PostgreSQL SQLSTATEs that mean "lost a race, the same transaction may well succeed again".
RETRYABLE = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


class Busy(Exception):
    """A write kept losing races with concurrent writes; nothing of it was saved."""


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DatabaseError):
        return False
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) in RETRYABLE or getattr(cause, "pgcode", None) in RETRYABLE


def is_unavailable(exc: BaseException) -> bool:
    """The database did not answer (down, connection lost, timed out), as opposed to refusing."""
    return isinstance(exc, OperationalError) and not is_retryable(exc)


def config_lock(*, shared: bool) -> None:
    """Take the configuration lock for the rest of the current transaction (see the docstring)."""
    if connection.vendor != "postgresql":
        return
    if not connection.in_atomic_block:
        raise RuntimeError("config_lock() outside a transaction would be released at once")
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [CONFIG_LOCK_ID])


def retrying(attempt: Callable[[], T], *, what: str = "write") -> T:
    """Run ``attempt`` (which opens and commits its own transaction) again when it lost a
    deadlock or serialization race, with a short random pause so the two racers part ways.
    Raises ``Busy`` after ``ATTEMPTS``."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except DatabaseError as exc:
            if not is_retryable(exc) or connection.in_atomic_block:
                # Inside an outer transaction the retry would run in an aborted transaction:
                # the outer level owns the retry.
                raise
            log.warning("%s lost a database race (attempt %d of %d): %s", what, number, ATTEMPTS, exc)
            if number == ATTEMPTS:
                raise Busy(f"the {what} kept conflicting with concurrent changes") from exc
            time.sleep(random.uniform(0.01, 0.05) * number)
    raise AssertionError("unreachable")
