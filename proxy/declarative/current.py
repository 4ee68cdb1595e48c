"""What a configuration apply reads and writes in bulk: the database's objects of every kind,
read once per apply (one query per model, not one per object of the file), and the writes of
the kinds that can be made in batches.

Which kinds are written in batches (``bulk_create``/``bulk_update``, no model signals): those
whose only uniqueness is their identity in the file, so that nothing needs the database to judge
an object before the objects above it are saved. Products and plans have a second unique field
(their display name), and partners' saves announce suspensions to open WebSockets
(proxy/signals.py): they are saved one by one, as before. Batched writes do what the signals
would have done: one audit entry per changed object (``audit.recorder.record_many``) and one
config version bump (``configbus.bump_on_commit``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import DataError, IntegrityError, models, transaction
from django.utils import timezone

from audit.recorder import record_many, state
from proxy.configbus import bump_on_commit
from proxy.declarative.format import Path_
from proxy.declarative.kinds import NESTED, PARTNER, TOP_KINDS, Kind
from proxy.models import ApiProduct, Partner, Plan, Route, Subscription, Target, Upstream

Progress = Callable[[str, int, int], None]
BATCH = 500  # rows per statement; Django lowers it further where SQLite's parameter limit needs


def _identity_only(kind: Kind) -> bool:
    """Is the kind's identity (with its parent) its only uniqueness?"""
    meta = kind.model._meta
    own = {kind.identity, kind.parent} - {""}
    unique_fields = {f.name for f in meta.concrete_fields if f.unique and not f.primary_key}
    constraints = [
        set(c.fields) for c in meta.constraints if isinstance(c, models.UniqueConstraint) and c.condition is None
    ]
    others = [c for c in meta.constraints if not isinstance(c, models.UniqueConstraint)]
    return unique_fields <= own and all(c <= own for c in constraints) and not others and not meta.unique_together


BATCHED = frozenset(
    kind.name for kind in (*TOP_KINDS, *NESTED.values()) if kind is not PARTNER and _identity_only(kind)
)


class Current:
    """The database's configuration by kind and identity, as the apply goes: read once, then
    kept up to date with what the apply saves, so references resolve to objects of the file."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[Any, models.Model]] = {
            "product": {p.slug: p for p in ApiProduct.objects.all()},
            "plan": {p.slug: p for p in Plan.objects.all()},
            "upstream": {u.name: u for u in Upstream.objects.all()},
            "target": {(t.upstream_id, t.url): t for t in Target.objects.select_related("upstream")},
            "route": {r.name: r for r in Route.objects.select_related("upstream", "product")},
            "partner": {p.slug: p for p in Partner.objects.all()},
            "subscription": {
                (s.partner_id, s.product_id): s
                for s in Subscription.objects.select_related("partner", "product", "plan")
            },
        }
        # References name products, plans, upstreams and partners by their identity.
        self.named: dict[type[models.Model], dict[Any, models.Model]] = {
            ApiProduct: self.rows["product"],
            Plan: self.rows["plan"],
            Upstream: self.rows["upstream"],
            Partner: self.rows["partner"],
        }

    @staticmethod
    def key(kind: Kind, identity: Any, parent: models.Model | None) -> Any:
        if isinstance(identity, models.Model):
            identity = identity.pk
        return (parent.pk, identity) if parent is not None else identity

    def find(self, kind: Kind, identity: Any, parent: models.Model | None) -> models.Model | None:
        if parent is not None and parent.pk is None:
            return None
        return self.rows[kind.name].get(self.key(kind, identity, parent))

    def named_object(self, model: type[models.Model], value: Any) -> models.Model | None:
        return self.named[model].get(value)

    def saved(self, kind: Kind, obj: models.Model, parent: models.Model | None) -> None:
        self.rows[kind.name][self.key(kind, getattr(obj, kind.identity), parent)] = obj

    def deleted(self, kind: Kind, obj: models.Model) -> None:
        """Forget a deleted object of a top-level kind (what the apply reads after pruning:
        routes, for their conflicts)."""
        if not kind.parent:
            self.rows[kind.name].pop(getattr(obj, kind.identity), None)


@dataclass
class _Write:
    obj: models.Model
    path: Path_
    before: dict[str, Any] | None  # audit state before an update; None for a creation
    fields: tuple[str, ...] = ()  # the fields an update changes


@dataclass
class Batch:
    """The creations and updates of one kind, written by ``flush()``."""

    kind: Kind
    writes: list[_Write] = field(default_factory=list)

    def create(self, obj: models.Model, path: Path_) -> None:
        self.writes.append(_Write(obj, path, None))

    def update(self, obj: models.Model, current: models.Model, path: Path_, fields: tuple[str, ...]) -> None:
        if any(f.name == "updated" for f in self.kind.model._meta.concrete_fields):
            obj.updated = timezone.now()  # type: ignore[attr-defined]  # bulk_update skips auto_now
            fields = (*fields, "updated")
        self.writes.append(_Write(obj, path, state(current), fields))

    def flush(self, refused: Callable[[Path_, Exception], None], progress: Progress) -> None:
        """Write the batch. When the database refuses some of it (a value too large, a name
        taken meanwhile), the objects are saved one at a time instead, to name each one it
        refuses; such an apply is refused whole, so how it got there does not matter."""
        writes, self.writes = self.writes, []
        if not writes:
            return
        model = self.kind.model
        creations = [w.obj for w in writes if w.before is None]
        updates: dict[tuple[str, ...], list[models.Model]] = {}
        for w in writes:
            if w.before is not None:
                updates.setdefault(w.fields, []).append(w.obj)
        try:
            with transaction.atomic():
                model._default_manager.bulk_create(creations, batch_size=BATCH)
                for fields, objs in updates.items():
                    model._default_manager.bulk_update(objs, fields, batch_size=BATCH)
        except (DataError, IntegrityError):
            self._one_by_one(writes, refused)
            return
        progress(f"auditing {self.kind.section}", 0, len(writes))
        record_many([(w.obj, "create" if w.before is None else "update", w.before, state(w.obj)) for w in writes])
        bump_on_commit()
        progress(f"auditing {self.kind.section}", len(writes), len(writes))

    @staticmethod
    def _one_by_one(writes: list[_Write], refused: Callable[[Path_, Exception], None]) -> None:
        for w in writes:
            if w.before is None:
                w.obj.pk = None
                w.obj._state.adding = True
            try:
                with transaction.atomic():
                    w.obj.save()
            except (DataError, IntegrityError) as exc:
                refused(w.path, exc)
