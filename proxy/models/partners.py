"""Who may call: API products, plans, partners, their subscriptions and API keys."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from proxy.gateway.apikeys import PREFIX_LENGTH
from proxy.models.routing import validate_networks


class ApiProduct(models.Model):
    """A named group of routes that partners subscribe to, e.g. "Appliance API v1"."""

    in_snapshot = True
    APPROVAL_CHOICES = [("auto", "Granted at once"), ("manual", "Approved by staff")]

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    published = models.BooleanField(default=True, help_text="Shown in the developer portal's catalogue.")
    approval = models.CharField(max_length=10, choices=APPROVAL_CHOICES, default="auto")
    openapi = models.JSONField(null=True, blank=True, help_text="The OpenAPI document shown in the portal.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Plan(models.Model):
    """Limits and quotas. Rate limits use a sliding window; quotas reset at 00:00 UTC (day)
    and on the 1st of the month (month)."""

    in_snapshot = True
    SCOPE_CHOICES = [("key", "Per API key"), ("partner", "Per partner (all its keys together)")]

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    scope = models.CharField(max_length=10, choices=SCOPE_CHOICES, default="key")
    per_second = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    per_minute = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    per_hour = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    quota_day = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    quota_month = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    public = models.BooleanField(default=True, help_text="Offered to partners in the portal.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def limits(self) -> dict[str, int]:
        pairs = {"second": self.per_second, "minute": self.per_minute, "hour": self.per_hour}
        return {k: v for k, v in pairs.items() if v}

    def quotas(self) -> dict[str, int]:
        pairs = {"day": self.quota_day, "month": self.quota_month}
        return {k: v for k, v in pairs.items() if v}


class Partner(models.Model):
    """An organisation that calls the API (a voice assistant, an automation service, an app)."""

    in_snapshot = True
    STATUS_CHOICES = [("pending", "Pending approval"), ("active", "Active"), ("suspended", "Suspended")]

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="pending")
    contact_email = models.EmailField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    # Where the partner may call from (proxy/gateway/iprules.py), checked after authentication.
    ip_allow = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_networks],
        help_text='CIDRs the partner\'s calls must come from, e.g. ["198.51.100.0/24"]; empty allows any.',
    )
    ip_deny = models.JSONField(default=list, blank=True, validators=[validate_networks], help_text="CIDRs refused.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    in_snapshot = True
    STATUS_CHOICES = [("pending", "Pending approval"), ("active", "Active"), ("rejected", "Rejected")]

    partner = models.ForeignKey(Partner, related_name="subscriptions", on_delete=models.CASCADE)
    product = models.ForeignKey(ApiProduct, related_name="subscriptions", on_delete=models.CASCADE)
    plan = models.ForeignKey(Plan, related_name="subscriptions", on_delete=models.PROTECT)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="active")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["partner", "product"], name="one_subscription_per_product")]

    def __str__(self) -> str:
        return f"{self.partner} → {self.product} ({self.plan})"


class ApiKey(models.Model):
    """Only the public prefix and a keyed hash are stored; the secret is shown once."""

    in_snapshot = True

    partner = models.ForeignKey(Partner, related_name="keys", on_delete=models.CASCADE)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    hashed = models.CharField(max_length=64, editable=False)
    products = models.ManyToManyField(
        ApiProduct,
        blank=True,
        related_name="keys",
        help_text="Products this key may call; empty allows every product the partner subscribes to.",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix} ({self.name})"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    def clean(self) -> None:
        if self.expires_at and self._state.adding and self.expires_at <= timezone.now():
            raise ValidationError({"expires_at": "The expiry must be in the future."})


class JwtIssuer(models.Model):
    """A trusted token issuer (OAuth account linking for voice assistants). The partner is the
    one whose slug equals the token's ``partner_claim``."""

    in_snapshot = True

    name = models.CharField(max_length=100, unique=True)
    issuer = models.CharField(max_length=300, unique=True, help_text="The tokens' iss claim.")
    jwks_url = models.URLField(max_length=500)
    audience = models.CharField(max_length=300, help_text="The aud claim the tokens must carry.")
    partner_claim = models.CharField(max_length=100, default="azp")
    algorithms = models.JSONField(default=list, blank=True, help_text='Default ["RS256", "ES256"].')
    leeway_seconds = models.PositiveIntegerField(default=30)
    enabled = models.BooleanField(default=True)

    class Meta:
        verbose_name = "JWT issuer"

    def __str__(self) -> str:
        return self.name
