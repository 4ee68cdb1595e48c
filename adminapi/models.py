"""Admin API tokens, and the "Test a request" page's entry in Django admin."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from adminapi import tokens
from proxy.models import Route


class AdminToken(models.Model):
    """A staff user's token for the admin API. Only the prefix and a keyed hash are stored; the
    token acts with exactly its user's permissions."""

    audited = True  # creations and deletions appear in the audit log (the hash redacted)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="admin_tokens", on_delete=models.CASCADE)
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'ci-deploy'.")
    prefix = models.CharField(max_length=tokens.PREFIX_LENGTH, unique=True, editable=False)
    hashed = models.CharField(max_length=64, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "admin API token"

    def __str__(self) -> str:
        return f"{self.prefix} ({self.name})"

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class RequestTest(Route):
    """No table of its own: gives the "Test a request" page a place (and a permission) in
    Django admin. See adminapi/admin.py."""

    class Meta:
        proxy = True
        verbose_name = "test a request"
        verbose_name_plural = "test a request"
