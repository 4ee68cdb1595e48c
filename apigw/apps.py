from __future__ import annotations

from django.apps import AppConfig


class ApigwConfig(AppConfig):
    name = "apigw"
    verbose_name = "API gateway"

    def ready(self) -> None:
        from apigw import checks  # noqa: F401  (registers the system checks)
