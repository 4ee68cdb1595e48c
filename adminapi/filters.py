"""Query-string filters of the admin API's listings (django-filter).

Related objects are filtered by their slug or name, as the API shows them, never by id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField

from audit.models import AuditLog
from proxy.gateway.routing import PATH_TYPES
from proxy.models import ApiKey, ApiProduct, JwtIssuer, Partner, Plan, Route, Subscription, Target, Upstream


class UpstreamFilter(filters.FilterSet):
    class Meta:
        model = Upstream
        fields = {"name": ["exact", "icontains"]}


class TargetFilter(filters.FilterSet):
    upstream = filters.CharFilter(field_name="upstream__name", help_text="Upstream name.")

    class Meta:
        model = Target
        fields = ["upstream", "enabled"]


class RouteFilter(filters.FilterSet):
    upstream = filters.CharFilter(field_name="upstream__name", help_text="Upstream name.")
    product = filters.CharFilter(field_name="product__slug", help_text="Product slug.")
    path_type = filters.ChoiceFilter(choices=[(t, t) for t in PATH_TYPES])
    auth = filters.ChoiceFilter(choices=Route.AUTH_CHOICES)

    class Meta:
        model = Route
        fields = {
            "name": ["exact", "icontains"],
            "path": ["exact", "startswith"],
            "enabled": ["exact"],
            "priority": ["exact", "gte", "lte"],
        }


class ApiProductFilter(filters.FilterSet):
    approval = filters.ChoiceFilter(choices=ApiProduct.APPROVAL_CHOICES)

    class Meta:
        model = ApiProduct
        fields = ["slug", "published", "approval"]


class PlanFilter(filters.FilterSet):
    scope = filters.ChoiceFilter(choices=Plan.SCOPE_CHOICES)

    class Meta:
        model = Plan
        fields = ["slug", "scope", "public"]


class PartnerFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=Partner.STATUS_CHOICES)

    class Meta:
        model = Partner
        fields = ["slug", "status"]


class SubscriptionFilter(filters.FilterSet):
    partner = filters.CharFilter(field_name="partner__slug", help_text="Partner slug.")
    product = filters.CharFilter(field_name="product__slug", help_text="Product slug.")
    plan = filters.CharFilter(field_name="plan__slug", help_text="Plan slug.")
    status = filters.ChoiceFilter(choices=Subscription.STATUS_CHOICES)

    class Meta:
        model = Subscription
        fields = ["partner", "product", "plan", "status"]


class ApiKeyFilter(filters.FilterSet):
    partner = filters.CharFilter(field_name="partner__slug", help_text="Partner slug.")
    product = filters.CharFilter(field_name="products__slug", help_text="Keys limited to this product slug.")
    status = filters.ChoiceFilter(
        choices=[("active", "active"), ("expired", "expired"), ("revoked", "revoked")], method="filter_status"
    )

    class Meta:
        model = ApiKey
        fields = ["partner", "product", "status", "prefix"]

    def filter_status(self, queryset: QuerySet[ApiKey], name: str, value: str) -> QuerySet[ApiKey]:
        now = timezone.now()
        if value == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        expired = Q(expires_at__isnull=False, expires_at__lte=now)
        live = queryset.filter(revoked_at__isnull=True)
        return live.filter(expired) if value == "expired" else live.exclude(expired)


class JwtIssuerFilter(filters.FilterSet):
    class Meta:
        model = JwtIssuer
        fields = ["name", "enabled"]


class AuditLogFilter(filters.FilterSet):
    model = filters.CharFilter(method="filter_model", help_text="app_label.model, e.g. proxy.route.")
    actor = filters.CharFilter(field_name="actor_label", help_text="Username (or cli:<user>).")
    source = filters.ChoiceFilter(choices=AuditLog.SOURCE_CHOICES)
    action = filters.ChoiceFilter(choices=AuditLog.ACTION_CHOICES)

    class Meta:
        model = AuditLog
        fields = ["model", "object_id", "actor", "source", "action"]

    def filter_model(self, queryset: QuerySet[AuditLog], name: str, value: str) -> QuerySet[AuditLog]:
        app_label, _, model = value.lower().partition(".")
        return queryset.filter(content_type__app_label=app_label, content_type__model=model)


class UTCDateTimeField(IsoDateTimeField):
    """Python accepts UTC offsets up to ±23:59, PostgreSQL up to ±15:59: compare in UTC."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValidationError("The time is out of range.", code="invalid") from None


class UTCDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


# "from" is a keyword in Python, so these two are added after the class statement.
AuditLogFilter.base_filters["from"] = UTCDateTimeFilter(
    field_name="at", lookup_expr="gte", label="Entries at or after this time (ISO 8601)."
)
AuditLogFilter.base_filters["to"] = UTCDateTimeFilter(
    field_name="at", lookup_expr="lt", label="Entries before this time (ISO 8601)."
)
