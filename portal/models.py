"""Who may use the portal for a partner: memberships (a login in an organisation, with a role)
and pending invitations.

A portal login belongs to exactly one organisation (``PartnerMembership.user`` is one-to-one):
isolation then needs no "current organisation" state, and removing someone from the team
removes their portal login. Staff use Django admin and need no membership.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from proxy.models import Partner

ROLE_CHOICES = [("owner", "Owner"), ("developer", "Developer")]


class PartnerMembership(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, related_name="portal_membership", on_delete=models.CASCADE)
    partner = models.ForeignKey(Partner, related_name="memberships", on_delete=models.CASCADE)
    role = models.CharField(max_length=10, choices=ROLE_CHOICES, default="developer")
    email_verified_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the member followed the link mailed to them."
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created"]
        verbose_name = "portal membership"

    def __str__(self) -> str:
        return f"{self.user} in {self.partner} ({self.role})"

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"


class Invitation(models.Model):
    """A pending invitation; deleted when accepted or cancelled (which voids its link)."""

    partner = models.ForeignKey(Partner, related_name="invitations", on_delete=models.CASCADE)
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=ROLE_CHOICES, default="developer")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, related_name="+", null=True, blank=True, on_delete=models.SET_NULL
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["partner", "email"], name="one_invitation_per_email")]

    def __str__(self) -> str:
        return f"{self.email} → {self.partner} ({self.role})"
