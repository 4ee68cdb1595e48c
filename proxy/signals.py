"""Cross-cutting event: any change to a model the data plane serves from bumps the config
version (admin, shell, API, management commands alike). ``QuerySet.update()`` sends no signal;
service functions that use it call ``bump_on_commit()`` themselves."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from proxy.configbus import bump_on_commit


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
