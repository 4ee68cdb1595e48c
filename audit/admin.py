"""The audit log in Django admin: filterable, searchable, read-only for everyone."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from audit.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_label", "source", "action", "content_type", "object_repr", "changes")
    list_filter = (
        "source",
        "action",
        ("content_type", admin.RelatedOnlyFieldListFilter),
        ("actor", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("object_repr", "object_id", "actor_label")
    date_hierarchy = "at"
    list_select_related = ("content_type",)
    fields = (
        "at",
        "actor",
        "actor_label",
        "source",
        "remote_addr",
        "action",
        "content_type",
        "object_id",
        "object_repr",
        "diff",
    )
    readonly_fields = fields

    @admin.display(description="changed")
    def changes(self, entry: AuditLog) -> str:
        return ", ".join(entry.changed_fields or [])

    @admin.display(description="before → after")
    def diff(self, entry: AuditLog) -> str:
        before, after = entry.before or {}, entry.after or {}
        names = entry.changed_fields if entry.action == "update" else sorted(before.keys() | after.keys())
        rows = [
            (
                name,
                _show(before.get(name)) if entry.before is not None else "",
                _show(after.get(name)) if entry.after is not None else "",
            )
            for name in names
        ]
        if not rows:
            return "-"
        body = format_html_join("", "<tr><th>{}</th><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>", rows)
        return format_html("<table><tr><th>field</th><th>before</th><th>after</th></tr>{}</table>", body)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
