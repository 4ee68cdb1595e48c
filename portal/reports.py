"""Usage reads for the portal: requests over time, status counts, latency, quotas and their forecast.

Traffic totals come from ``UsageHourly`` (flushed from Redis every USAGE_FLUSH_SECONDS). Quota
use comes from the limiter's own Redis counters, the numbers the gateway enforces, and falls back
to the hourly rows (admitted requests = requests - 429) when Redis cannot be read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.db.models import Min, Q, Sum
from django.utils import timezone

from portal.forecast import Forecast, quota_runs_out, recent_rate
from proxy import configbus
from proxy.gateway.ratelimit import quota_window
from proxy.gateway.vocabulary import key_subject, partner_subject
from proxy.models import ApiKey, ApiProduct, Partner, Plan, Subscription, UsageHourly
from proxy.usage_selectors import USAGE_COLUMNS, admitted_in

log = logging.getLogger("apigw.portal")

COLUMNS = USAGE_COLUMNS
FORECAST_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Range:
    name: str
    label: str
    span: timedelta
    step: timedelta
    tick_format: str


RANGES = {
    r.name: r
    for r in (
        Range("24h", "Last 24 hours", timedelta(hours=24), timedelta(hours=1), "%H:%M"),
        Range("7d", "Last 7 days", timedelta(days=7), timedelta(hours=6), "%a %Hh"),
        Range("30d", "Last 30 days", timedelta(days=30), timedelta(days=1), "%b %d"),
    )
}
DEFAULT_RANGE = "24h"


@dataclass(slots=True)
class Counts:
    requests: int = 0
    status_2xx: int = 0
    status_3xx: int = 0
    status_4xx: int = 0
    status_5xx: int = 0
    status_429: int = 0
    latency_ms_sum: int = 0

    def add(self, row: Mapping[str, Any]) -> None:
        for column in COLUMNS:
            setattr(self, column, getattr(self, column) + int(row.get(column) or 0))

    @property
    def responses(self) -> int:
        """Responses the gateway timed (requests refused by a limit are not)."""
        return self.status_2xx + self.status_3xx + self.status_4xx + self.status_5xx

    @property
    def avg_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.responses if self.responses else None

    @property
    def errors(self) -> int:
        return self.status_4xx + self.status_5xx + self.status_429


@dataclass(slots=True)
class Bucket:
    start: datetime
    counts: Counts = field(default_factory=Counts)


@dataclass(slots=True)
class UsageReport:
    range: Range
    start: datetime
    end: datetime
    buckets: list[Bucket]
    totals: Counts
    by_key: list[tuple[ApiKey | None, Counts]]
    by_product: list[tuple[str, str, Counts]]  # slug, name, counts


def window(range_: Range, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) aligned to the range's step in UTC, ending after the step that holds ``now``."""
    step = int(range_.step.total_seconds())
    end_ts = (int(now.timestamp()) // step + 1) * step
    end = datetime.fromtimestamp(end_ts, tz=UTC)
    return end - range_.span, end


def usage_report(
    *,
    partner: Partner,
    range_name: str,
    key: ApiKey | None = None,
    product: str | None = None,
    now: datetime | None = None,
) -> UsageReport:
    range_ = RANGES[range_name]
    now = now or timezone.now()
    start, end = window(range_, now)
    rows = UsageHourly.objects.filter(partner=partner, hour__gte=start, hour__lt=end)
    if key is not None:
        rows = rows.filter(key=key)
    if product is not None:
        rows = rows.filter(product=product)
    grouped = rows.values("hour", "key_id", "product").annotate(**{c: Sum(c) for c in COLUMNS})

    n = int(range_.span / range_.step)
    buckets = [Bucket(start + i * range_.step) for i in range(n)]
    totals = Counts()
    per_key: dict[int | None, Counts] = {}
    per_product: dict[str, Counts] = {}
    step = range_.step.total_seconds()
    for row in grouped:
        index = int((row["hour"] - start).total_seconds() // step)
        if 0 <= index < n:
            buckets[index].counts.add(row)
        totals.add(row)
        per_key.setdefault(row["key_id"], Counts()).add(row)
        per_product.setdefault(row["product"] or "", Counts()).add(row)
    keys = ApiKey.objects.in_bulk([k for k in per_key if k is not None])
    by_key = sorted(((keys.get(k) if k else None, c) for k, c in per_key.items()), key=lambda kc: -kc[1].requests)
    names = dict(ApiProduct.objects.filter(slug__in=per_product).values_list("slug", "name"))
    by_product = sorted(
        ((slug, names.get(slug, slug), c) for slug, c in per_product.items()), key=lambda item: -item[2].requests
    )
    return UsageReport(range_, start, end, buckets, totals, by_key, by_product)


# -- quotas ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuotaUse:
    period: str  # "day" or "month"
    limit: int
    used: int
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used / self.limit)) if self.limit else 0


@dataclass(frozen=True, slots=True)
class QuotaLine:
    product: ApiProduct
    plan: Plan
    key: ApiKey | None  # None: the plan counts the partner's keys together
    day: QuotaUse | None
    month: QuotaUse | None
    forecast: Forecast | None
    live: bool  # False: read from the hourly rows because Redis could not be read


def _window_start(period: str, now: datetime) -> datetime:
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def quota_counter_key(subject: str, product: str, period: str, now: datetime, *, partner_id: int | None = None) -> str:
    """The limiter's counter (proxy/gateway/vocabulary.py: ``{p}<t>q:<subject>:<product>:<period>:<window>``);
    on a Redis Cluster its hash tag is the partner's, so ``partner_id`` is needed there."""
    window_id, _ = quota_window(period, now.timestamp())
    names = configbus.keys()
    if names.cluster and partner_id is None:
        raise ValueError("quota_counter_key needs partner_id on a Redis Cluster")
    tag = names.partner_tag(partner_id) if partner_id is not None else ""
    return names.quota(tag, subject, product, period, window_id)


def quota_lines(
    *, partner: Partner, key: ApiKey | None = None, product: str | None = None, now: datetime | None = None
) -> list[QuotaLine]:
    """One line per subscribed product with a quota, and per key when the plan counts keys apart."""
    now = (now or timezone.now()).astimezone(UTC)
    subscriptions = Subscription.objects.filter(partner=partner, status="active").select_related("product", "plan")
    if product is not None:
        subscriptions = subscriptions.filter(product__slug=product)
    wanted: list[tuple[Subscription, ApiKey | None, str]] = []
    active_keys: list[ApiKey] | None = None
    for sub in subscriptions:
        if not sub.plan.quotas():
            continue
        if sub.plan.scope == "partner":
            wanted.append((sub, None, partner_subject(partner.pk)))
            continue
        if key is not None:
            candidates = [key]
        else:
            if active_keys is None:
                active_keys = [
                    k
                    for k in partner.keys.filter(revoked_at__isnull=True)
                    .order_by("created", "pk")
                    .prefetch_related("products")
                    if k.status == "active"
                ]
            candidates = active_keys
        for k in candidates:
            allowed = {p.slug for p in k.products.all()}
            if not allowed or sub.product.slug in allowed:
                wanted.append((sub, k, key_subject(k.pk)))

    counters = [
        quota_counter_key(subject, sub.product.slug, period, now, partner_id=partner.pk)
        for sub, _k, subject in wanted
        for period in ("day", "month")
    ]
    live = True
    values: list[Any] = []
    if counters:
        try:
            values = list(configbus.redis_client().mget(counters))
        except (redis.RedisError, OSError) as exc:
            log.warning("quota counters unreadable, using hourly usage rows: %s", exc)
            live = False

    lines = []
    for i, (sub, counted_key, _subject) in enumerate(wanted):
        scope = UsageHourly.objects.filter(partner=partner, product=sub.product.slug)
        if counted_key is not None:
            scope = scope.filter(key=counted_key)
        uses: dict[str, QuotaUse] = {}
        for j, period in enumerate(("day", "month")):
            limit = sub.plan.quotas().get(period)
            if not limit:
                continue
            if live:
                raw = values[2 * i + j]
                used = int(raw) if raw is not None else 0
            else:
                used = admitted_in(scope, _window_start(period, now))
            resets = datetime.fromtimestamp(quota_window(period, now.timestamp())[1], tz=UTC)
            uses[period] = QuotaUse(period, limit, used, resets)
        forecast = None
        month = uses.get("month")
        if month is not None:
            recent = scope.filter(hour__gte=now - FORECAST_WINDOW).filter(Q(requests__gt=0))
            first = recent.aggregate(first=Min("hour"))["first"]
            rate = recent_rate(
                requests=admitted_in(recent),
                first_use=first,
                now=now,
                window=FORECAST_WINDOW,
            )
            forecast = quota_runs_out(
                used=month.used, limit=month.limit, rate_per_second=rate, now=now, resets_at=month.resets_at
            )
        lines.append(QuotaLine(sub.product, sub.plan, counted_key, uses.get("day"), month, forecast, live))
    return lines
