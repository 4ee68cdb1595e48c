from __future__ import annotations

from django.apps import AppConfig


class ApigwConfig(AppConfig):
    name = "apigw"
    verbose_name = "API gateway"

    def ready(self) -> None:
        # Imported for their side effects: the system checks register, the session signal connects.
        from apigw import checks, sessions  # noqa: F401
