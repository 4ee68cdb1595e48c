from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from apigw import health, logins, metrics_view

urlpatterns = [
    # Before admin.site.urls, which would otherwise answer it unthrottled.
    path("admin/login/", logins.admin_login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    path("api/admin/v1/", include("adminapi.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view.metrics, name="metrics"),
]
