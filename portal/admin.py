"""Admin for portal models, and the staff actions of the portal's flows.

Approving partners and subscription requests must email the partner, which needs the portal's
email templates; proxy/ is machine-facing and knows nothing about them. So this module
re-registers proxy's ``PartnerAdmin`` and ``SubscriptionAdmin`` as subclasses that add the
portal's actions and inlines: proxy/admin.py stays untouched, everything it defines keeps
working, and the portal's additions live with the portal. (``proxy`` comes before ``portal`` in
INSTALLED_APPS, and this module imports proxy.admin anyway, so the originals are registered first.)
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from portal import emails, services
from portal.models import Invitation, PartnerMembership
from proxy.admin import PartnerAdmin as ProxyPartnerAdmin
from proxy.admin import SubscriptionAdmin as ProxySubscriptionAdmin
from proxy.models import Partner, Subscription


class MembershipInline(admin.TabularInline):
    model = PartnerMembership
    extra = 0
    fields = ("user", "role", "email_verified_at", "created")
    readonly_fields = ("email_verified_at", "created")
    raw_id_fields = ("user",)


class InvitationInline(admin.TabularInline):
    model = Invitation
    extra = 0
    fields = ("email", "role", "invited_by", "created")
    readonly_fields = ("invited_by", "created")


admin.site.unregister(Partner)


@admin.register(Partner)
class PartnerAdmin(ProxyPartnerAdmin):
    inlines = [*ProxyPartnerAdmin.inlines, MembershipInline, InvitationInline]
    actions = [*ProxyPartnerAdmin.actions, "approve"]

    @admin.action(description="Approve pending partners and email their owners")
    def approve(self, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        approved = 0
        for partner in queryset:
            if services.partner_approve(partner=partner):
                emails.partner_approved(request, partner)
                approved += 1
        skipped = queryset.count() - approved
        self.message_user(
            request,
            f"{approved} partner(s) approved and emailed."
            + (f" {skipped} were not pending and are unchanged." if skipped else ""),
        )


admin.site.unregister(Subscription)


@admin.register(Subscription)
class SubscriptionAdmin(ProxySubscriptionAdmin):
    actions = ["approve", "reject"]

    def _decide(self, request: HttpRequest, queryset: QuerySet[Subscription], approve: bool) -> None:
        decided = 0
        for subscription in queryset.select_related("partner", "product", "plan"):
            if services.subscription_decide(subscription=subscription, approve=approve):
                subscription.refresh_from_db()
                emails.subscription_decided(request, subscription)
                decided += 1
        verb = "approved" if approve else "rejected"
        level = messages.SUCCESS if decided else messages.WARNING
        self.message_user(request, f"{decided} pending subscription(s) {verb}; the partners are emailed.", level)

    @admin.action(description="Approve pending requests and email the partners")
    def approve(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject pending requests and email the partners")
    def reject(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._decide(request, queryset, approve=False)


@admin.register(PartnerMembership)
class PartnerMembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "partner", "role", "email_verified_at", "created")
    list_filter = ("role",)
    search_fields = ("user__email", "partner__name", "partner__slug")
    raw_id_fields = ("user", "partner")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "partner", "role", "invited_by", "created")
    search_fields = ("email", "partner__name")
    raw_id_fields = ("partner", "invited_by")
