"""One row per change to the gateway configuration: who, when, what object, before and after."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone


class AuditLog(models.Model):
    """Written by ``audit.recorder`` in the same transaction as the change it describes, so a
    rolled-back change (a refused config apply, a dry run) leaves no entry behind."""

    ACTION_CHOICES = [("create", "Created"), ("update", "Updated"), ("delete", "Deleted")]
    SOURCE_CHOICES = [
        ("api", "Admin API"),
        ("admin", "Django admin"),
        ("config", "Config apply"),
        ("cli", "Management command"),
        ("portal", "Developer portal"),
        ("system", "Other"),  # a shell, a background job
    ]

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the entry still names its author after the user is deleted.
    actor_label = models.CharField(max_length=150, blank=True, help_text="Username, or e.g. cli:root.")
    source = models.CharField(max_length=10, choices=SOURCE_CHOICES, db_index=True)
    action = models.CharField(max_length=10, choices=ACTION_CHOICES, db_index=True)
    content_type = models.ForeignKey(ContentType, null=True, on_delete=models.SET_NULL, related_name="+")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True, help_text="Field values before the change; secrets redacted.")
    after = models.JSONField(null=True, blank=True, help_text="Field values after the change; secrets redacted.")
    changed_fields = models.JSONField(default=list, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["content_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label or '-'} {self.action} {self.object_repr}"
