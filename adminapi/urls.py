"""/api/admin/v1/ (docs/admin-api.md)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from adminapi import config, explain, usage, views
from adminapi.base import AUTHENTICATION
from adminapi.permissions import IsStaff

app_name = "adminapi"

router = DefaultRouter()
router.include_root_view = False
router.register("products", views.ApiProductViewSet)
router.register("plans", views.PlanViewSet)
router.register("upstreams", views.UpstreamViewSet)
router.register("targets", views.TargetViewSet)
router.register("routes", views.RouteViewSet)
router.register("partners", views.PartnerViewSet)
router.register("subscriptions", views.SubscriptionViewSet)
router.register("keys", views.ApiKeyViewSet)
router.register("jwt-issuers", views.JwtIssuerViewSet)
router.register("audit", views.AuditLogViewSet)


@csrf_exempt  # any method: it only ever answers 404
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown addresses under the API answer JSON, like everything else in it."""
    return JsonResponse({"detail": "Not found."}, status=404)


urlpatterns = [
    path("", include(router.urls)),
    path("usage/", usage.UsageView.as_view(), name="usage"),
    path("explain", explain.ExplainView.as_view(), name="explain"),
    path("config/export", config.ConfigExportView.as_view(), name="config-export"),
    path("config/schema", config.ConfigSchemaView.as_view(), name="config-schema"),
    path("config/diff", config.ConfigDiffView.as_view(), name="config-diff"),
    path("config/apply", config.ConfigApplyView.as_view(), name="config-apply"),
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=AUTHENTICATION, permission_classes=[IsStaff]),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="adminapi:schema", authentication_classes=AUTHENTICATION, permission_classes=[IsStaff]
        ),
        name="docs",
    ),
    # [\s\S], not ".": it must match a newline too (an encoded %0A), or such a path falls to
    # Django's HTML 404, which lists every URL pattern in DEBUG.
    re_path(r"^(?P<rest>[\s\S]*)$", not_found),
]
