"""Records every change to an audited model, whatever made it (admin API, Django admin, config
apply, management commands, a shell).

Audited: the models the gateway serves from (``in_snapshot = True``, the same set that bumps the
config version, proxy/signals.py) and any model that sets ``audited = True`` (admin API
tokens). The signals fire inside the change's transaction, so the entry commits or rolls back
with it. ``QuerySet.update()`` and ``bulk_create`` send no signals and are not recorded: code
that changes audited rows that way records the change itself (``record()``, ``record_many()``
as the config apply does).

Secrets are never stored: fields named in ``REDACTED`` keep only the fact that they changed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from audit import context
from audit.models import AuditLog

REDACTED = frozenset({"hashed", "password", "secret", "token", "client_secret"})
REDACTED_VALUE = "[redacted]"
BATCH = 500  # rows per INSERT: well under SQLite's and PostgreSQL's limits on parameters


def is_audited(model: Any) -> bool:
    return bool(getattr(model, "in_snapshot", False) or getattr(model, "audited", False))


def state(instance: models.Model) -> dict[str, Any]:
    """The instance's field values as plain JSON data (foreign keys as ids, m2m as sorted ids)."""
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        data[field.name] = field.value_from_object(instance)
    if instance.pk is not None:
        for m2m in instance._meta.many_to_many:
            data[m2m.name] = sorted(getattr(instance, m2m.name).values_list("pk", flat=True))
    loaded: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return loaded


def _ignored(model: type[models.Model]) -> set[str]:
    """Fields that change on every save (``auto_now``) are not changes anyone made."""
    return {f.name for f in model._meta.concrete_fields if getattr(f, "auto_now", False)}


def _redact(state: dict[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {k: (REDACTED_VALUE if k in REDACTED and v else v) for k, v in state.items()}


def _changed(model: type[models.Model], before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    if before is None or after is None:
        return []
    ignored = _ignored(model)
    return sorted(k for k in after.keys() | before.keys() if k not in ignored and before.get(k) != after.get(k))


def _who(actor: Any) -> dict[str, Any]:
    """The acting fields of an entry (the context's actor, or the system)."""
    if actor is None:
        return {"actor": None, "actor_label": "", "source": "system", "remote_addr": None}
    return {
        "actor": actor.resolved_user(),
        "actor_label": actor.resolved_label(),
        "source": actor.source,
        "remote_addr": actor.remote_addr(),
    }


def _entry(
    who: dict[str, Any],
    instance: models.Model,
    action: str,
    content_type: ContentType,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    changed: list[str],
) -> AuditLog:
    """An unsaved entry for one change; secrets in ``before``/``after`` redacted."""
    return AuditLog(
        **who,
        action=action,
        content_type=content_type,
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        before=_redact(before),
        after=_redact(after),
        changed_fields=changed,
    )


def record(instance: models.Model, action: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    """Write (or extend) the audit entry for one change of ``instance``."""
    model = type(instance)
    changed = _changed(model, before, after)
    if action == "update" and before is not None and not changed:
        return  # saved without a change (an admin form submitted as it was)
    actor = context.current()
    content_type = ContentType.objects.get_for_model(model)
    object_key = (content_type.pk, str(instance.pk))
    if actor is not None and action == "update" and object_key in actor.written:
        # The entry keeps its first "before" (or stays a creation) and takes the latest "after".
        entry = actor.written[object_key]
        entry.after = _redact(after)
        if entry.action == "update":
            entry.changed_fields = sorted(set(entry.changed_fields) | set(changed))
        entry.save(update_fields=["after", "changed_fields"])
        return
    entry = _entry(_who(actor), instance, action, content_type, before, after, changed)
    entry.save()
    if actor is not None and action != "delete":
        actor.written[object_key] = entry


def record_many(changes: Sequence[tuple[models.Model, str, dict[str, Any] | None, dict[str, Any] | None]]) -> None:
    """``record()`` for many changes made without signals (``bulk_create``/``bulk_update``):
    the same entries, one per changed object, written in one INSERT per batch. ``before`` and
    ``after`` are ``state()`` of the object before and after the change."""
    actor = context.current()
    who = _who(actor)  # the same for every entry: asked once, not once per object
    entries: list[tuple[tuple[int, str], AuditLog]] = []
    for instance, action, before, after in changes:
        model = type(instance)
        changed = _changed(model, before, after)
        if action == "update" and before is not None and not changed:
            continue
        content_type = ContentType.objects.get_for_model(model)
        key = (content_type.pk, str(instance.pk))
        if actor is not None and action == "update" and key in actor.written:
            record(instance, action, before, after)  # extends the entry made earlier in this context
            continue
        entry = _entry(who, instance, action, content_type, before, after, changed)
        entries.append((key, entry))
    AuditLog.objects.bulk_create([entry for _, entry in entries], batch_size=BATCH)
    if actor is not None:
        actor.written.update((key, entry) for key, entry in entries if entry.action != "delete")


@receiver(pre_save)
def _remember_before(sender: Any, instance: models.Model, raw: bool = False, **kwargs: Any) -> None:
    if raw or not is_audited(sender) or instance._state.adding or instance.pk is None:
        return
    current = sender._base_manager.filter(pk=instance.pk).first()
    instance._audit_before = state(current) if current is not None else None  # type: ignore[attr-defined]


@receiver(post_save)
def _record_save(sender: Any, instance: models.Model, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if raw or not is_audited(sender):
        return
    if created:
        record(instance, "create", None, state(instance))
    else:
        record(instance, "update", getattr(instance, "_audit_before", None), state(instance))
    instance._audit_before = None  # type: ignore[attr-defined]


@receiver(post_delete)
def _record_delete(sender: Any, instance: models.Model, **kwargs: Any) -> None:
    if is_audited(sender):
        state = {f.name: f.value_from_object(instance) for f in instance._meta.concrete_fields}
        record(instance, "delete", json.loads(json.dumps(state, cls=DjangoJSONEncoder)), None)


@receiver(m2m_changed)
def _record_relation(sender: Any, instance: models.Model, action: str, reverse: bool, **kwargs: Any) -> None:
    # Only the forward side (key.products.set(...)) is used by the project; a change made from
    # the other side (product.keys.add(key)) is recorded by whoever makes it with record().
    if reverse or not is_audited(type(instance)):
        return
    if action.startswith("pre_"):
        instance._audit_m2m_before = state(instance)  # type: ignore[attr-defined]
    elif action.startswith("post_"):
        before = getattr(instance, "_audit_m2m_before", None)
        record(instance, "update", before, state(instance))
