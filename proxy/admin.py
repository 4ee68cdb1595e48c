from __future__ import annotations

from django.contrib import admin

from proxy.models import Route, Target, Upstream


class TargetInline(admin.TabularInline):
    model = Target
    extra = 1


@admin.register(Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "connect_timeout", "read_timeout", "updated")
    search_fields = ("name", "description")
    inlines = [TargetInline]


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ("name", "path_type", "path", "hosts", "methods", "priority", "upstream", "enabled")
    list_filter = ("enabled", "path_type", "upstream")
    search_fields = ("name", "path")
    fieldsets = [
        (None, {"fields": ("name", "enabled", "upstream", "priority")}),
        ("Match", {"fields": ("hosts", "path_type", "path", "methods", "headers", "query", "protocols")}),
        ("Forward", {"fields": ("strip_prefix", "rewrite", "preserve_host")}),
    ]
