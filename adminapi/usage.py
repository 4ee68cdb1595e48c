"""``GET /api/admin/v1/usage/``: counted requests per hour or day, filtered and grouped.

Reads the hourly rows the gateways' usage flush writes (proxy/usage.py); counts still in Redis
(at most USAGE_FLUSH_SECONDS old) are not included yet.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from adminapi.base import AdminAPIView
from proxy.gateway.vocabulary import admitted
from proxy.models import ApiKey, Partner, Route, UsageHourly
from proxy.usage_selectors import USAGE_COLUMNS

METRICS = USAGE_COLUMNS
GROUPS = {"partner": "partner__slug", "key": "key__prefix", "route": "route__name", "product": "product"}
MAX_SPAN = {"hour": timedelta(days=31), "day": timedelta(days=400)}
DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=30)}


class UsageQuerySerializer(serializers.Serializer):
    partner = serializers.SlugField(required=False, help_text="Partner slug.")
    key = serializers.RegexField(r"^[a-z2-7]{8}$", required=False, help_text="API key prefix.")
    product = serializers.SlugField(required=False, help_text="Product slug.")
    route = serializers.SlugField(required=False, help_text="Route name.")
    granularity = serializers.ChoiceField(choices=["hour", "day"], default="hour")
    group_by = serializers.CharField(required=False, help_text="Comma-separated: partner, key, route, product.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields: dict[str, serializers.Field] = super().get_fields()
        # "from" is a Python keyword, so these are added here rather than as class attributes.
        fields["from"] = serializers.DateTimeField(
            required=False, help_text="Start, inclusive (ISO 8601; default: 24 hours or 30 days before 'to')."
        )
        fields["to"] = serializers.DateTimeField(required=False, help_text="End, exclusive (default: now).")
        return fields

    def validate_group_by(self, value: str) -> list[str]:
        groups = [g.strip() for g in value.split(",") if g.strip()]
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise serializers.ValidationError(f"Unknown: {', '.join(unknown)}. Use {', '.join(GROUPS)}.")
        return list(dict.fromkeys(groups))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        granularity = attrs["granularity"]
        end = attrs.get("to") or timezone.now()
        start = attrs.get("from") or end - DEFAULT_SPAN[granularity]
        if start >= end:
            raise serializers.ValidationError({"from": "Must be before 'to'."})
        if end - start > MAX_SPAN[granularity]:
            raise serializers.ValidationError(
                {"from": f"At most {MAX_SPAN[granularity].days} days at {granularity} granularity."}
            )
        attrs["from"], attrs["to"] = start, end
        for name, model, lookup in (("partner", Partner, "slug"), ("key", ApiKey, "prefix"), ("route", Route, "name")):
            if attrs.get(name) and not model._default_manager.filter(**{lookup: attrs[name]}).exists():
                raise serializers.ValidationError({name: f"No {model._meta.verbose_name} {attrs[name]!r}."})
        attrs.setdefault("group_by", [])
        return attrs


class UsageRowSerializer(serializers.Serializer):
    period = serializers.DateTimeField(help_text="Start of the hour or day (UTC).")
    partner = serializers.CharField(required=False, allow_null=True)
    key = serializers.CharField(required=False, allow_null=True)
    route = serializers.CharField(required=False, allow_null=True)
    product = serializers.CharField(required=False, allow_blank=True)
    requests = serializers.IntegerField()
    status_2xx = serializers.IntegerField()
    status_3xx = serializers.IntegerField()
    status_4xx = serializers.IntegerField()
    status_5xx = serializers.IntegerField()
    status_429 = serializers.IntegerField(help_text="Refused by a rate limit or quota.")
    latency_ms_avg = serializers.FloatField(allow_null=True)


class UsageTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    status_2xx = serializers.IntegerField()
    status_3xx = serializers.IntegerField()
    status_4xx = serializers.IntegerField()
    status_5xx = serializers.IntegerField()
    status_429 = serializers.IntegerField()
    latency_ms_avg = serializers.FloatField(allow_null=True)


class UsageResponseSerializer(serializers.Serializer):
    granularity = serializers.ChoiceField(choices=["hour", "day"])
    group_by = serializers.ListField(child=serializers.CharField())
    totals = UsageTotalsSerializer()
    results = UsageRowSerializer(many=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields: dict[str, serializers.Field] = super().get_fields()
        fields["from"] = serializers.DateTimeField()
        fields["to"] = serializers.DateTimeField()
        return fields


def usage_rows(query: dict[str, Any]) -> dict[str, Any]:
    """The selector: sums of the hourly rows per period (and per group)."""
    rows: QuerySet[UsageHourly] = UsageHourly.objects.filter(hour__gte=query["from"], hour__lt=query["to"])
    filters = Q()
    if query.get("partner"):
        filters &= Q(partner__slug=query["partner"])
    if query.get("key"):
        filters &= Q(key__prefix=query["key"])
    if query.get("route"):
        filters &= Q(route__name=query["route"])
    if query.get("product"):
        filters &= Q(product=query["product"])
    rows = rows.filter(filters)
    trunc = TruncHour("hour", tzinfo=UTC) if query["granularity"] == "hour" else TruncDay("hour", tzinfo=UTC)
    groups = [GROUPS[g] for g in query["group_by"]]
    sums = {m: Sum(m) for m in METRICS}
    results = []
    for row in rows.annotate(period=trunc).values("period", *groups).annotate(**sums).order_by("period", *groups):
        item: dict[str, Any] = {"period": row["period"]}
        for name in query["group_by"]:
            item[name] = row[GROUPS[name]]
        item.update(_metrics(row))
        results.append(item)
    return {
        "granularity": query["granularity"],
        "from": query["from"],
        "to": query["to"],
        "group_by": query["group_by"],
        "totals": _metrics(rows.aggregate(**sums)),
        "results": results,
    }


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {m: int(row[m] or 0) for m in METRICS if m != "latency_ms_sum"}
    latency = row["latency_ms_sum"] or 0
    answered = admitted(out["requests"], out["status_429"])
    out["latency_ms_avg"] = round(latency / answered, 2) if answered > 0 and latency else None
    return out


class UsageView(AdminAPIView):
    required_permissions = {"GET": ["proxy.view_usagehourly"]}

    @extend_schema(
        parameters=[UsageQuerySerializer],
        responses={200: UsageResponseSerializer},
    )
    def get(self, request: Request) -> Response:
        """Requests counted by the gateways, per hour or day, optionally per partner, key, route or
        product. Periods without traffic are left out."""
        params = UsageQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(usage_rows(params.validated_data))
