from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import JSONField, QuerySet
from django.http import HttpRequest

from proxy import jsonshapes, services
from proxy.models import (
    ApiKey,
    ApiProduct,
    JwtIssuer,
    Partner,
    Plan,
    Route,
    Subscription,
    Target,
    Upstream,
    UsageHourly,
)
from proxy.transactions import config_lock


class ConfigAdmin(admin.ModelAdmin):
    """The configuration's admin pages: JSON fields that say what they expect, checked field by
    field (proxy/jsonshapes.py); and writes that queue behind a running config apply instead of
    deadlocking with it (the lock order of proxy/transactions.py)."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method != "POST":
            return super().changeform_view(request, *args, **kwargs)
        with transaction.atomic():  # Django's own atomic block nests inside this one
            config_lock(shared=True)
            return super().changeform_view(request, *args, **kwargs)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method != "POST":
            return super().delete_view(request, *args, **kwargs)
        with transaction.atomic():
            config_lock(shared=True)
            return super().delete_view(request, *args, **kwargs)

    def response_action(self, request: HttpRequest, queryset: Any, *args: Any, **kwargs: Any) -> Any:
        with transaction.atomic():  # bulk actions (revoke, suspend, approve, delete selected)
            config_lock(shared=True)
            return super().response_action(request, queryset, *args, **kwargs)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if isinstance(db_field, JSONField):
            shaped = jsonshapes.formfield(db_field, **kwargs)
            if shaped is not None:
                return shaped
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class TargetInline(admin.TabularInline):
    model = Target
    extra = 1


@admin.register(Upstream)
class UpstreamAdmin(ConfigAdmin):
    list_display = ("name", "description", "algorithm", "connect_timeout", "read_timeout", "updated")
    list_filter = ("algorithm",)
    search_fields = ("name", "description")
    inlines = [TargetInline]
    fieldsets = [
        (None, {"fields": ("name", "description")}),
        ("Load balancing", {"fields": ("algorithm", "hash_on", "hash_header")}),
        ("Timeouts", {"fields": ("connect_timeout", "read_timeout")}),
        (
            "Passive health checks (circuit breaker, shared by every gateway instance)",
            {
                "fields": (
                    "failure_threshold",
                    "failure_window",
                    "ejection_seconds",
                    "max_ejection_seconds",
                    "failure_statuses",
                )
            },
        ),
        (
            "Active health checks",
            {
                "classes": ["collapse"],
                "fields": (
                    "health_check_path",
                    "health_check_interval",
                    "health_check_timeout",
                    "health_check_statuses",
                    "healthy_threshold",
                    "unhealthy_threshold",
                ),
            },
        ),
        ("Retry budget", {"classes": ["collapse"], "fields": ("retry_budget_percent", "retry_budget_per_second")}),
    ]


@admin.register(Route)
class RouteAdmin(ConfigAdmin):
    list_display = ("name", "path_type", "path", "hosts", "methods", "priority", "upstream", "enabled")
    list_filter = ("enabled", "path_type", "upstream")
    search_fields = ("name", "path")
    fieldsets = [
        (None, {"fields": ("name", "enabled", "upstream", "priority")}),
        ("Match", {"fields": ("hosts", "path_type", "path", "methods", "headers", "query", "protocols")}),
        (
            "Access",
            {
                "fields": (
                    "product",
                    "auth",
                    "allow_query_key",
                    "limit_per_second",
                    "limit_per_minute",
                    "limit_per_hour",
                )
            },
        ),
        ("Path form", {"fields": ("encoded_slashes", "path_parameters", "case_insensitive")}),
        ("Forward", {"fields": ("strip_prefix", "rewrite", "preserve_host", "upstream_rules")}),
        (
            "Timeouts, retries, body limit",
            {
                "fields": (
                    "connect_timeout",
                    "read_timeout",
                    "total_timeout",
                    "retries",
                    "retry_statuses",
                    "max_body_bytes",
                )
            },
        ),
        ("Response cache", {"classes": ["collapse"], "fields": ("cache_ttl", "cache_headers", "cache_max_bytes")}),
        (
            "CORS",
            {
                "classes": ["collapse"],
                "fields": (
                    "cors_origins",
                    "cors_methods",
                    "cors_headers",
                    "cors_expose_headers",
                    "cors_credentials",
                    "cors_max_age",
                ),
            },
        ),
        ("IP rules", {"classes": ["collapse"], "fields": ("ip_allow", "ip_deny")}),
        ("Header transforms", {"classes": ["collapse"], "fields": ("request_transform", "response_transform")}),
        (
            "WebSocket",
            {
                "classes": ["collapse"],
                "fields": (
                    "ws_max_message_bytes",
                    "ws_messages_per_second",
                    "ws_key_messages_per_second",
                    "ws_rate_action",
                    "ws_max_connections_per_key",
                    "ws_max_connections_per_partner",
                ),
            },
        ),
    ]


# -- partners, keys, plans ------------------------------------------------------------------------
class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0


@admin.register(ApiProduct)
class ApiProductAdmin(ConfigAdmin):
    list_display = ("name", "slug", "published", "approval")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Plan)
class PlanAdmin(ConfigAdmin):
    list_display = ("name", "scope", "per_second", "per_minute", "per_hour", "quota_day", "quota_month", "public")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Partner)
class PartnerAdmin(ConfigAdmin):
    list_display = ("name", "slug", "status", "contact_email", "created")
    list_filter = ("status",)
    search_fields = ("name", "slug", "contact_email")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [SubscriptionInline]
    actions = ["activate", "suspend"]

    @admin.action(description="Lift the suspension of the selected partners")
    def activate(self, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        # Only suspended partners: approving a pending one is the portal's "Approve" action
        # (portal/admin.py), which also emails its owners. Two actions that both approve, one
        # of them silently, left partners approved and never told.
        suspended = [p for p in queryset if p.status == "suspended"]
        for partner in suspended:
            services.partner_set_status(partner=partner, status="active")
        skipped = queryset.count() - len(suspended)
        self.message_user(
            request,
            f"{len(suspended)} partner(s) active again."
            + (
                f" {skipped} were not suspended and are unchanged (approve pending ones with Approve)."
                if skipped
                else ""
            ),
            messages.SUCCESS if suspended else messages.WARNING,
        )

    @admin.action(description="Suspend the selected partners (their keys stop working)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        for partner in queryset:
            services.partner_set_status(partner=partner, status="suspended")
        self.message_user(request, f"{queryset.count()} partner(s) suspended.", messages.WARNING)


@admin.register(ApiKey)
class ApiKeyAdmin(ConfigAdmin):
    list_display = ("prefix", "name", "partner", "status", "expires_at", "last_used_at", "created")
    list_filter = ("partner",)
    search_fields = ("prefix", "name", "partner__slug")
    readonly_fields = ("prefix", "revoked_at", "last_used_at", "created")
    filter_horizontal = ("products",)
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # New keys go through the service so the secret is generated, hashed and shown once.
        key, secret = services.api_key_create(partner=obj.partner, name=obj.name, expires_at=obj.expires_at)
        obj.pk, obj.prefix, obj.hashed = key.pk, key.prefix, key.hashed
        obj._state.adding = False
        self.message_user(
            request, f"Key {key.prefix} created. Copy the secret now, it is not shown again: {secret}", messages.WARNING
        )

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            services.api_key_revoke(key=key)
        self.message_user(request, f"{queryset.count()} key(s) revoked.")


@admin.register(Subscription)
class SubscriptionAdmin(ConfigAdmin):
    list_display = ("partner", "product", "plan", "status", "created")
    list_filter = ("status", "product", "plan")


@admin.register(JwtIssuer)
class JwtIssuerAdmin(ConfigAdmin):
    list_display = ("name", "issuer", "audience", "partner_claim", "enabled")


@admin.register(UsageHourly)
class UsageHourlyAdmin(admin.ModelAdmin):
    list_display = (
        "hour",
        "partner",
        "key",
        "route",
        "product",
        "requests",
        "status_2xx",
        "status_4xx",
        "status_5xx",
        "status_429",
    )
    list_filter = ("partner",)
    date_hierarchy = "hour"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
