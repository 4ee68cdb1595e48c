"""Serializers of the configuration models.

Every write runs the model's own ``full_clean()``: the rules the Django admin enforces (routes
compiled by the data plane's compiler, conflicting routes refused, target URLs parsed) hold for
the API too, and come back as 400 with the field named.
"""

from __future__ import annotations

import copy
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import serializers
from rest_framework.settings import api_settings

from adminapi.fields import SlugLookupField, StorableJSONField
from audit.models import AuditLog
from proxy import services
from proxy.gateway.routing import MATCH_TYPES, PROTOCOLS
from proxy.models import ApiKey, ApiProduct, JwtIssuer, Partner, Plan, Route, Subscription, Target, Upstream

MAX_LIST = 100
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA")


def model_errors(exc: DjangoValidationError) -> serializers.ValidationError:
    detail = serializers.as_serializer_error(exc)
    if NON_FIELD_ERRORS in detail:
        detail[api_settings.NON_FIELD_ERRORS_KEY] = detail.pop(NON_FIELD_ERRORS)
    return serializers.ValidationError(detail)


class ModelCleanMixin:
    """Validates the would-be instance with ``full_clean()`` and keeps the values the model
    normalised (upper-cased methods, a prefix without its trailing slash, ...)."""

    instance: Any
    Meta: Any
    clean_exclude: tuple[str, ...] = ()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        model: type[models.Model] = self.Meta.model
        instance = copy.copy(self.instance) if self.instance is not None else model()
        many = {f.name for f in model._meta.many_to_many}
        for name, value in attrs.items():
            if name not in many:
                setattr(instance, name, value)
        try:
            instance.full_clean(exclude=self.clean_exclude or None)
        except DjangoValidationError as exc:
            raise model_errors(exc) from None
        return {name: (value if name in many else getattr(instance, name)) for name, value in attrs.items()}


class ConfigSerializer(ModelCleanMixin, serializers.ModelSerializer):
    """All of a model's fields (a field added to the model is in the API at once), JSON fields
    refusing text the database cannot store."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.JSONField: StorableJSONField,
    }


# -- routing ------------------------------------------------------------------------------------
class MatcherSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    match = serializers.ChoiceField(choices=MATCH_TYPES, default="exact")
    value = serializers.CharField(max_length=1000, allow_blank=True, default="")


class TargetSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Target
        fields = ["id", "url", "weight", "enabled"]


class UpstreamSerializer(ConfigSerializer):
    targets = TargetSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Upstream
        fields = "__all__"


class TargetSerializer(ConfigSerializer):
    upstream = SlugLookupField(slug_field="name", queryset=Upstream.objects.all())

    class Meta:
        model = Target
        fields = "__all__"


class RouteSerializer(ConfigSerializer):
    upstream = SlugLookupField(slug_field="name", queryset=Upstream.objects.all())
    product = SlugLookupField(slug_field="slug", queryset=ApiProduct.objects.all(), allow_null=True, required=False)
    hosts = serializers.ListField(child=serializers.CharField(max_length=253), max_length=MAX_LIST, required=False)
    methods = serializers.ListField(child=serializers.CharField(max_length=20), max_length=MAX_LIST, required=False)
    headers = serializers.ListField(child=MatcherSerializer(), max_length=MAX_LIST, required=False)
    query = serializers.ListField(child=MatcherSerializer(), max_length=MAX_LIST, required=False)
    protocols = serializers.ListField(child=serializers.ChoiceField(choices=PROTOCOLS), max_length=2, required=False)

    class Meta:
        model = Route
        fields = "__all__"


# -- partners -----------------------------------------------------------------------------------
class ApiProductSerializer(ConfigSerializer):
    openapi = StorableJSONField(required=False, allow_null=True)

    class Meta:
        model = ApiProduct
        fields = "__all__"


class PlanSerializer(ConfigSerializer):
    class Meta:
        model = Plan
        fields = "__all__"


class PartnerSerializer(ConfigSerializer):
    class Meta:
        model = Partner
        fields = "__all__"

    def update(self, instance: Partner, validated_data: dict[str, Any]) -> Partner:
        status = validated_data.pop("status", None)
        partner: Partner = super().update(instance, validated_data)
        if status is not None and status != partner.status:
            partner = services.partner_set_status(partner=partner, status=status)
        return partner


class SubscriptionSerializer(ConfigSerializer):
    partner = SlugLookupField(slug_field="slug", queryset=Partner.objects.all())
    product = SlugLookupField(slug_field="slug", queryset=ApiProduct.objects.all())
    plan = SlugLookupField(slug_field="slug", queryset=Plan.objects.all())

    class Meta:
        model = Subscription
        fields = "__all__"

    def create(self, validated_data: dict[str, Any]) -> Subscription:
        return services.subscription_set(**validated_data)


class ApiKeySerializer(ConfigSerializer):
    """Keys are created with a secret that is returned once (``ApiKeyCreatedSerializer``) and
    never again; the partner of a key cannot change."""

    partner = SlugLookupField(slug_field="slug", queryset=Partner.objects.all())
    products = SlugLookupField(
        slug_field="slug",
        queryset=ApiProduct.objects.all(),
        many=True,
        required=False,
        help_text="Products this key may call; empty allows every subscribed product.",
    )
    status = serializers.ChoiceField(choices=["active", "expired", "revoked"], read_only=True)
    clean_exclude = ("prefix", "hashed")  # made by the service from the generated secret

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "prefix",
            "partner",
            "name",
            "products",
            "expires_at",
            "status",
            "revoked_at",
            "last_used_at",
            "created",
        ]
        read_only_fields = ["prefix", "revoked_at", "last_used_at", "created"]

    def validate_partner(self, partner: Partner) -> Partner:
        if self.instance is not None and partner.pk != self.instance.partner_id:
            raise serializers.ValidationError("The partner of a key cannot change; create a key for the other one.")
        return partner

    def create(self, validated_data: dict[str, Any]) -> ApiKey:
        key, secret = services.api_key_create(
            partner=validated_data["partner"],
            name=validated_data["name"],
            products=validated_data.get("products", ()),
            expires_at=validated_data.get("expires_at"),
        )
        key.secret = secret  # type: ignore[attr-defined]  # read once by ApiKeyCreatedSerializer
        return key


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.SerializerMethodField(help_text="The whole key. Shown only in this response.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]

    def get_secret(self, key: ApiKey) -> str:
        return str(getattr(key, "secret", ""))


class KeyRotateSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        min_value=0, max_value=90 * 86_400, default=86_400, help_text="How long the old key keeps working."
    )
    name = serializers.CharField(max_length=100, required=False, help_text="Name of the new key (default: same).")


class JwtIssuerSerializer(ConfigSerializer):
    algorithms = serializers.ListField(
        child=serializers.ChoiceField(choices=JWT_ALGORITHMS), max_length=10, required=False
    )

    class Meta:
        model = JwtIssuer
        fields = "__all__"


class AuditLogSerializer(serializers.ModelSerializer):
    model = serializers.SerializerMethodField(help_text="app_label.model of the changed object.")
    before = serializers.JSONField(read_only=True, allow_null=True)
    after = serializers.JSONField(read_only=True, allow_null=True)
    changed_fields = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = AuditLog
        fields = [
            "id",
            "at",
            "actor_label",
            "source",
            "action",
            "model",
            "object_id",
            "object_repr",
            "before",
            "after",
            "changed_fields",
            "remote_addr",
        ]

    def get_model(self, entry: AuditLog) -> str | None:
        ct = entry.content_type
        return f"{ct.app_label}.{ct.model}" if ct is not None else None
