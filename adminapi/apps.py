from __future__ import annotations

from django.apps import AppConfig


class AdminApiConfig(AppConfig):
    name = "adminapi"
    verbose_name = "Admin API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from adminapi import schema  # noqa: F401  (registers the token scheme with drf-spectacular)
