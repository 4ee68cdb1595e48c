"""Usage counted by the gateways in Redis, flushed here in hourly buckets (proxy/usage.py)."""

from __future__ import annotations

from django.db import models

from proxy.models.partners import ApiKey, Partner
from proxy.models.routing import Route


class UsageHourly(models.Model):
    hour = models.DateTimeField(db_index=True, help_text="Start of the hour (UTC).")
    partner = models.ForeignKey(Partner, related_name="usage", on_delete=models.CASCADE)
    key = models.ForeignKey(ApiKey, related_name="usage", null=True, blank=True, on_delete=models.SET_NULL)
    route = models.ForeignKey(Route, related_name="usage", null=True, blank=True, on_delete=models.SET_NULL)
    product = models.CharField(max_length=100, blank=True)
    requests = models.PositiveBigIntegerField(default=0)
    status_2xx = models.PositiveBigIntegerField(default=0)
    status_3xx = models.PositiveBigIntegerField(default=0)
    status_4xx = models.PositiveBigIntegerField(default=0)
    status_5xx = models.PositiveBigIntegerField(default=0)
    status_429 = models.PositiveBigIntegerField(default=0, help_text="Refused by a rate limit or quota.")
    latency_ms_sum = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "usage (hourly)"
        # No unique constraint: two flushers may each add a row for the same bucket (readers sum,
        # and a flush adds to exactly one row), which keeps nullable keys/routes portable.
        indexes = [models.Index(fields=["partner", "hour"])]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.partner_id}/{self.key_id}: {self.requests}"


class UsageFlush(models.Model):
    """One row per Redis batch applied: makes a replayed batch a no-op (exactly-once)."""

    batch = models.CharField(max_length=64, unique=True)
    applied_at = models.DateTimeField(auto_now_add=True, db_index=True)
    fields = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"usage batch {self.batch} ({self.fields} fields)"
