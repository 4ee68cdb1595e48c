"""Cross-cutting event: any change to a model the data plane serves from bumps the config
version (admin, shell, API, management commands alike). ``QuerySet.update()`` sends no signal;
service functions that use it call ``bump_on_commit()`` themselves. Revoking a key or suspending
a partner also announces it on the channel layer, so open WebSockets close at once. Pending
partners without a key are not in the snapshot and do not bump it (sign-ups never reach the
data plane)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from proxy.configbus import bump_on_commit
from proxy.gateway.vocabulary import key_group, partner_group
from proxy.models import Partner
from proxy.snapshot_builder import partner_is_served

log = logging.getLogger("apigw.config")


def _served(sender: Any) -> bool:
    return bool(getattr(sender, "in_snapshot", False))


@receiver(post_save)
@receiver(post_delete)
def config_changed(sender: Any, **kwargs: Any) -> None:
    if _served(sender) and sender is not Partner:
        bump_on_commit()


# Partners: only those the gateway knows (proxy/snapshot_builder.py: served_partners_q) bump the version.
# An anonymous sign-up creates a pending partner; were that a bump, every sign-up would make every
# gateway rebuild its snapshot, and a sign-up flood would become a data-plane load test.
@receiver(pre_save, sender=Partner)
def partner_before_save(sender: Any, instance: Partner, **kwargs: Any) -> None:
    was = None
    if not instance._state.adding and instance.pk is not None:
        previous = Partner.objects.filter(pk=instance.pk).only("status", "pk").first()
        was = previous is not None and partner_is_served(previous)
    instance._was_served = was  # type: ignore[attr-defined]


@receiver(post_save, sender=Partner)
def partner_changed(sender: Any, instance: Partner, **kwargs: Any) -> None:
    if getattr(instance, "_was_served", None) or partner_is_served(instance):
        bump_on_commit()


@receiver(post_delete, sender=Partner)
def partner_deleted(sender: Any, instance: Partner, **kwargs: Any) -> None:
    # Its keys are deleted first (cascade) and bump on their own.
    if instance.status != "pending":
        bump_on_commit()


@receiver(m2m_changed)
def config_relation_changed(sender: Any, action: str, instance: Any, **kwargs: Any) -> None:
    if action.startswith("post_") and _served(type(instance)):
        bump_on_commit()


def _announce_revocation(group: str, reason: str) -> None:
    """Tell every gateway to close the group's WebSockets now (websocket.SocketRelay listens).
    Best effort: each gateway also re-checks its sockets on the snapshot swap that follows."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "credentials.revoked", "group": group, "reason": reason})
    except Exception as exc:  # Redis down: the snapshot swap closes the sockets instead
        log.warning("could not announce revocation of %s: %s", group, exc)


@receiver(post_save, sender="proxy.ApiKey")
def key_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.revoked_at is not None:
        transaction.on_commit(lambda: _announce_revocation(key_group(instance.pk), "API key revoked"))


@receiver(post_delete, sender="proxy.ApiKey")
def key_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    pk = instance.pk
    transaction.on_commit(lambda: _announce_revocation(key_group(pk), "API key deleted"))


@receiver(post_save, sender="proxy.Partner")
def partner_saved(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    if instance.status != "active" and not created:  # a new partner has no sockets to close
        transaction.on_commit(lambda: _announce_revocation(partner_group(instance.pk), f"partner {instance.status}"))
