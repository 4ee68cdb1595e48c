"""Cross-cutting event: any change to a model the data plane serves from bumps the config
version (admin, shell, API, management commands alike). ``QuerySet.update()`` sends no signal;
service functions that use it call ``bump_on_commit()`` themselves. Revoking a key or suspending
a partner also announces it on the channel layer, so open WebSockets close at once."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from proxy.configbus import bump_on_commit
from proxy.gateway.vocabulary import key_group, partner_group

log = logging.getLogger("apigw.config")


def _served(sender: Any) -> bool:
    return bool(getattr(sender, "in_snapshot", False))


@receiver(post_save)
@receiver(post_delete)
def config_changed(sender: Any, **kwargs: Any) -> None:
    if _served(sender):
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
def partner_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.status != "active":
        transaction.on_commit(lambda: _announce_revocation(partner_group(instance.pk), f"partner {instance.status}"))
