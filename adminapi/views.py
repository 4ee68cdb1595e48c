"""CRUD of the gateway configuration. Thin: validation is in the serializers (and the models),
writes with side effects go through proxy/services.py, and every committed change reaches the
gateways through the config-version bump (proxy/signals.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from adminapi import filters, serializers
from adminapi.base import AdminReadOnlyViewSet, AdminViewSet
from audit.models import AuditLog
from proxy import services
from proxy.models import ApiKey, ApiProduct, JwtIssuer, Partner, Plan, Route, Subscription, Target, Upstream

_CONFLICT = {409: OpenApiResponse(description="Other objects still use this one.")}


@extend_schema_view(destroy=extend_schema(responses={204: None, **_CONFLICT}))
class UpstreamViewSet(AdminViewSet):
    queryset = Upstream.objects.prefetch_related("targets")
    serializer_class = serializers.UpstreamSerializer
    filterset_class = filters.UpstreamFilter
    lookup_field = "name"
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created", "updated"]


class TargetViewSet(AdminViewSet):
    queryset = Target.objects.select_related("upstream")
    serializer_class = serializers.TargetSerializer
    filterset_class = filters.TargetFilter
    ordering_fields = ["url", "weight", "id"]


class RouteViewSet(AdminViewSet):
    queryset = Route.objects.select_related("upstream", "product")
    serializer_class = serializers.RouteSerializer
    filterset_class = filters.RouteFilter
    lookup_field = "name"
    search_fields = ["name", "path"]
    ordering_fields = ["name", "priority", "path", "created", "updated"]


@extend_schema_view(destroy=extend_schema(responses={204: None, **_CONFLICT}))
class ApiProductViewSet(AdminViewSet):
    queryset = ApiProduct.objects.all()
    serializer_class = serializers.ApiProductSerializer
    filterset_class = filters.ApiProductFilter
    lookup_field = "slug"
    search_fields = ["name", "slug", "description"]
    ordering_fields = ["name", "slug", "created"]


@extend_schema_view(destroy=extend_schema(responses={204: None, **_CONFLICT}))
class PlanViewSet(AdminViewSet):
    queryset = Plan.objects.all()
    serializer_class = serializers.PlanSerializer
    filterset_class = filters.PlanFilter
    lookup_field = "slug"
    search_fields = ["name", "slug"]
    ordering_fields = ["name", "slug"]


class PartnerViewSet(AdminViewSet):
    queryset = Partner.objects.all()
    serializer_class = serializers.PartnerSerializer
    filterset_class = filters.PartnerFilter
    lookup_field = "slug"
    search_fields = ["name", "slug", "contact_email"]
    ordering_fields = ["name", "slug", "created", "status"]

    def perform_destroy(self, instance: Partner) -> None:
        # A partner's keys and subscriptions go with it (cascade). Like Django admin's delete
        # page, that needs the right to delete those too: delete_partner alone must not be a
        # way around the 403 on DELETE /keys/.
        cascade = {
            "proxy.delete_apikey": ("API key(s)", instance.keys.count()),
            "proxy.delete_subscription": ("subscription(s)", instance.subscriptions.count()),
        }
        missing = [(perm, what, n) for perm, (what, n) in cascade.items() if n and not self.request.user.has_perm(perm)]
        if missing:
            raise PermissionDenied(
                f"Deleting partner {instance.slug!r} would also delete its "
                + " and ".join(f"{n} {what}" for _, what, n in missing)
                + f"; that needs {' and '.join(perm for perm, _, _ in missing)}."
                " Delete or revoke those first, or ask for the permission."
            )
        instance.delete()


class SubscriptionViewSet(AdminViewSet):
    queryset = Subscription.objects.select_related("partner", "product", "plan").order_by("id")
    serializer_class = serializers.SubscriptionSerializer
    filterset_class = filters.SubscriptionFilter
    ordering_fields = ["created", "id"]


@extend_schema_view(
    create=extend_schema(
        responses={201: serializers.ApiKeyCreatedSerializer},
        description="Create a key. The response carries the secret, which is never shown again.",
    ),
)
class ApiKeyViewSet(AdminViewSet):
    queryset = ApiKey.objects.select_related("partner").prefetch_related("products")
    serializer_class = serializers.ApiKeySerializer
    filterset_class = filters.ApiKeyFilter
    lookup_field = "prefix"
    search_fields = ["name", "prefix", "partner__slug"]
    ordering_fields = ["created", "name", "last_used_at", "expires_at"]
    action_permissions = {
        "revoke": ["proxy.change_apikey"],
        "rotate": ["proxy.add_apikey", "proxy.change_apikey"],
    }

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = serializer.save()
        created = serializers.ApiKeyCreatedSerializer(key, context=self.get_serializer_context())
        return Response(created.data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: serializers.ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, prefix: str) -> Response:
        """Revoke the key at once: every gateway refuses it within a second."""
        key = services.api_key_revoke(key=self.get_object())
        return Response(self.get_serializer(key).data)

    @extend_schema(request=serializers.KeyRotateSerializer, responses={201: serializers.ApiKeyCreatedSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, prefix: str) -> Response:
        """A new key (secret in the response, once) with the same products; the old key keeps
        working for ``grace_seconds`` and then expires."""
        old = self.get_object()
        params = serializers.KeyRotateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        if old.revoked_at is not None:
            return Response({"detail": "A revoked key cannot be rotated."}, status=status.HTTP_400_BAD_REQUEST)
        key, secret = services.api_key_rotate(
            key=old,
            grace=timedelta(seconds=params.validated_data["grace_seconds"]),
            name=params.validated_data.get("name"),
        )
        key.secret = secret  # type: ignore[attr-defined]
        created = serializers.ApiKeyCreatedSerializer(key, context=self.get_serializer_context())
        return Response(created.data, status=status.HTTP_201_CREATED)


class JwtIssuerViewSet(AdminViewSet):
    queryset = JwtIssuer.objects.order_by("name")
    serializer_class = serializers.JwtIssuerSerializer
    filterset_class = filters.JwtIssuerFilter
    search_fields = ["name", "issuer"]
    ordering_fields = ["name", "id"]


class AuditLogViewSet(AdminReadOnlyViewSet):
    """Every recorded change, newest first (read-only)."""

    queryset = AuditLog.objects.select_related("content_type")
    serializer_class = serializers.AuditLogSerializer
    filterset_class = filters.AuditLogFilter
    search_fields = ["object_repr", "actor_label"]
    ordering_fields = ["at", "id"]
