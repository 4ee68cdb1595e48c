"""Reads of counted usage, one definition for every reader: the portal's usage pages and quota
lines, the admin API's usage endpoint and the "partner near its monthly quota" metric.

"Quota used" is what the limiter counted against the quota: every counted request minus the
refused ones (``vocabulary.admitted``) — the same number the Redis quota counter holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db.models import F, QuerySet, Sum

from proxy.gateway.vocabulary import USAGE_COLUMNS, admitted
from proxy.models import UsageHourly

__all__ = ["USAGE_COLUMNS", "admitted_in", "admitted_rows", "busiest_key_admitted", "sums"]

# The database expression of vocabulary.admitted, for aggregates over hourly rows.
ADMITTED = Sum(F("requests") - F("status_429"))


def sums() -> dict[str, Sum]:
    """One ``Sum`` per usage column, for ``aggregate``/``annotate``."""
    return {column: Sum(column) for column in USAGE_COLUMNS}


def admitted_rows(rows: Iterable[Mapping[str, Any]]) -> int:
    """Admitted requests of rows already read (dicts with ``requests`` and ``status_429``)."""
    return sum(admitted(r["requests"], r["status_429"]) for r in rows)


def admitted_in(rows: QuerySet[UsageHourly], since: datetime | None = None) -> int:
    """Admitted requests of these hourly rows (from ``since`` on, if given)."""
    if since is not None:
        rows = rows.filter(hour__gte=since)
    return int(rows.aggregate(n=ADMITTED)["n"] or 0)


def busiest_key_admitted(rows: QuerySet[UsageHourly]) -> int:
    """The most admitted requests of any one key: a per-key quota refuses that key first."""
    per_key = rows.values("key").annotate(n=ADMITTED)
    return max((int(row["n"] or 0) for row in per_key), default=0)
