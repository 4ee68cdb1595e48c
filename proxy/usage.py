"""Move usage counted in Redis into hourly database rows, exactly once.

Usage is counted in one hash per hash tag (``{p}<t>usage``: one hash, tag "", on a single Redis;
``CLUSTER_TAGS`` hashes with fixed names, spread over the primaries, on a cluster; see
proxy/gateway/vocabulary.py). Each flush walks every tag, so every primary's usage is flushed:

1. Claim: per tag an atomic script RENAMEs the live hash to ``{p}<t>usage:batch:<id>`` and
   records the batch in ``{p}<t>usage:batches`` (same tag, same slot); it also returns that
   tag's batches old enough to be orphans. Counting goes on in a fresh hash; two instances can
   never claim the same counts.
2. Apply: in one database transaction, insert a ``UsageFlush(batch=id)`` (unique) per claimed
   batch and add their counts to ``UsageHourly``. A batch applied twice fails on the unique row
   and rolls back, so nothing is counted twice.
3. Forget: delete the batch hashes and their entries.

A crash after 1 leaves the batch in Redis; any instance picks up batches older than
``orphan_after`` seconds (under a short lock) and applies them one by one, or just forgets them
if step 2 had committed. Nothing is lost and nothing is counted twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from proxy import configbus
from proxy.gateway.redis_urls import SyncClient
from proxy.gateway.vocabulary import USAGE_METRICS, parse_usage_field
from proxy.models import ApiKey, Partner, Route, UsageFlush, UsageHourly

log = logging.getLogger("apigw.usage")

# KEYS: live usage hash, batch hash, batch index (one tag). ARGV: now, batch id, orphan cut-off.
_CLAIM = """
local claimed = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
  claimed = 1
end
return {claimed, redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[3])}
"""
FLUSH_RECORDS_KEPT = timedelta(days=7)


def flush_usage(*, orphan_after: float = 60.0) -> int:
    """Flush what is counted now under every tag (and any orphaned batch). Returns the number of
    fields applied."""
    client = configbus.redis_client()
    names = configbus.keys()
    claim = client.register_script(_CLAIM)
    now = time.time()
    fresh: list[tuple[str, str]] = []  # (tag, batch id)
    orphans: list[tuple[str, str]] = []
    for tag in names.tags:
        batch_id = uuid.uuid4().hex
        keys = [names.usage_key(tag), names.usage_batch(batch_id, tag), names.usage_batch_index(tag)]
        claimed, old = claim(keys=keys, args=[now, batch_id, now - orphan_after])
        if claimed:
            fresh.append((tag, batch_id))
        for raw in old:
            orphan = raw.decode() if isinstance(raw, bytes) else str(raw)
            # The lock keeps two instances from replaying one orphan at the same moment; the
            # unique UsageFlush row would refuse the second anyway.
            if orphan != batch_id and client.set(names.usage_batch(orphan, tag) + ":lock", "1", nx=True, ex=60):
                orphans.append((tag, orphan))
    applied = apply_batches(client, fresh) if fresh else 0
    for tag, orphan in orphans:
        applied += apply_batches(client, [(tag, orphan)])
    if fresh or orphans:
        UsageFlush.objects.filter(applied_at__lt=timezone.now() - FLUSH_RECORDS_KEPT).delete()
    return applied


def apply_batch(client: SyncClient, batch_id: str, tag: str = "") -> int:
    return apply_batches(client, [(tag, batch_id)])


def apply_batches(client: SyncClient, batches: list[tuple[str, str]]) -> int:
    """Apply claimed batches ((tag, id) pairs) in one transaction, then forget them in Redis."""
    names = configbus.keys()
    data: dict[str, int] = defaultdict(int)
    fields = {}
    for tag, batch_id in batches:
        stored = client.hgetall(names.usage_batch(batch_id, tag))
        fields[batch_id] = len(stored)
        for raw, value in stored.items():
            name = raw.decode() if isinstance(raw, bytes) else raw
            # Counts add up; a last-used time is a time: the latest wins.
            if isinstance(parse_usage_field(name), int):
                data[name] = max(data[name], int(value))
            else:
                data[name] += int(value)
    applied = 0
    if data:
        try:
            with transaction.atomic():
                UsageFlush.objects.bulk_create(UsageFlush(batch=b, fields=n) for b, n in fields.items() if n)
                _apply(data)
            applied = sum(fields.values())
        except IntegrityError:
            log.info("usage batch %s was applied before; forgetting it", ", ".join(fields))
    for tag, batch_id in batches:
        key = names.usage_batch(batch_id, tag)
        client.delete(key, key + ":lock")  # one tag: one slot
        client.zrem(names.usage_batch_index(tag), batch_id)
    return applied


def _apply(data: dict[str, int]) -> None:
    buckets: dict[tuple[int, int, int | None, int | None, str], dict[str, int]] = defaultdict(dict)
    last_used: dict[int, int] = {}
    for field, value in data.items():
        parsed = parse_usage_field(field)
        if isinstance(parsed, int):
            last_used[parsed] = max(value, last_used.get(parsed, 0))
            continue
        if parsed is None:
            log.warning("usage field %r not understood; skipped", field)
            continue
        bucket = (parsed.hour, parsed.partner_id, parsed.key_id, parsed.route_id, parsed.product)
        column = USAGE_METRICS[parsed.metric]
        buckets[bucket][column] = buckets[bucket].get(column, 0) + value

    partners = set(Partner.objects.filter(pk__in={b[1] for b in buckets}).values_list("pk", flat=True))
    keys = set(ApiKey.objects.filter(pk__in={b[2] for b in buckets if b[2]}).values_list("pk", flat=True))
    routes = set(Route.objects.filter(pk__in={b[3] for b in buckets if b[3]}).values_list("pk", flat=True))
    for (hour_no, partner_id, key_id, route_id, product_slug), counts in buckets.items():
        if partner_id not in partners:
            continue  # the partner was deleted, and its usage with it
        lookup: dict[str, Any] = {
            "hour": datetime.fromtimestamp(hour_no * 3600, tz=UTC),
            "partner_id": partner_id,
            "key_id": key_id if key_id in keys else None,
            "route_id": route_id if route_id in routes else None,
            "product": product_slug,
        }
        # Two flushers may both have created a row for this bucket: add to exactly one of them.
        row = UsageHourly.objects.filter(**lookup).order_by("pk").values_list("pk", flat=True).first()
        if row is None:
            UsageHourly.objects.create(**lookup, **counts)
        else:
            UsageHourly.objects.filter(pk=row).update(**{c: F(c) + v for c, v in counts.items()})
    for key_id, seconds in last_used.items():
        used = datetime.fromtimestamp(seconds, tz=UTC)
        ApiKey.objects.filter(pk=key_id).exclude(last_used_at__gte=used).update(last_used_at=used)


def report_quota_usage() -> None:
    """Publish how much of its monthly quota each subscription has used (the alert
    "partner near its monthly quota" reads it). Runs as a gateway maintenance job. For plans
    counted per key it reports the busiest key, the one that will be refused first."""
    from proxy.gateway import metrics
    from proxy.models import Subscription
    from proxy.usage_selectors import admitted_in, busiest_key_admitted

    now = timezone.now()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    subscriptions = Subscription.objects.filter(status="active", plan__quota_month__isnull=False).select_related(
        "partner", "product", "plan"
    )
    for sub in subscriptions:
        quota = sub.plan.quota_month
        if not quota:
            continue
        rows = UsageHourly.objects.filter(partner=sub.partner, product=sub.product.slug, hour__gte=month_start)
        used = busiest_key_admitted(rows) if sub.plan.scope == "key" else admitted_in(rows)
        metrics.set_quota_used_ratio(sub.partner.slug, sub.plan.slug, used / quota)
