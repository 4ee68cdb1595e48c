"""Applying a configuration file: one transaction, every object through its model's
validation, the changes reported per object (see proxy/declarative/__init__.py).

At scale (10,000 routes, docs/config.md "At scale") the database is read once per model
(``current.Current``), objects are judged in memory and written in batches (``current.Batch``),
and route conflicts are judged once, on the final state. The queries of an apply do not grow
with the number of objects in the file, except for objects that change one by one (products,
plans, partners, deletions) or whose checks name other objects (routes with upstream rules).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DataError, IntegrityError, models, transaction

from audit.context import acting
from proxy.declarative.current import BATCHED, Batch, Current, Progress
from proxy.declarative.format import ConfigError, ConfigInvalid, Lines, Path_, check, path_text
from proxy.declarative.kinds import (
    NESTED,
    PARTNER,
    PLAN,
    PRODUCT,
    ROUTE,
    SUBSCRIPTION,
    TARGET,
    TOP_KINDS,
    UPSTREAM,
    Kind,
)
from proxy.models import ApiProduct, Partner, Plan, Route, Subscription, Target, Upstream
from proxy.transactions import config_lock, retrying

_KINDS = {kind.name: kind for kind in (*TOP_KINDS, *NESTED.values())}


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # create, update, delete
    kind: str
    name: str
    fields: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)  # field → (old, new)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "note": self.note,
            "fields": {k: {"old": old, "new": new} for k, (old, new) in self.fields.items()},
        }

    def lines(self) -> list[str]:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        head = f"{sign} {self.kind} {self.name}" + (f" ({self.note})" if self.note else "")
        body = []
        for name, (old, new) in self.fields.items():
            body.append(
                f"    {name}: {_short(new)}"
                if self.action == "create"
                else f"    {name}: {_short(old)} -> {_short(new)}"
            )
        return [head, *body]


@dataclass(slots=True)
class Result:
    changes: list[Change]
    applied: bool

    def counts(self) -> dict[str, int]:
        return {a: sum(1 for c in self.changes if c.action == a) for a in ("create", "update", "delete")}

    def summary(self) -> str:
        if not self.changes:
            return "No changes."
        counts = self.counts()
        verb = "Applied" if self.applied else "Plan"
        return f"{verb}: {counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete."

    def text(self) -> str:
        return "\n".join([line for c in self.changes for line in c.lines()] + [self.summary()])


def _identity(obj: models.Model) -> str:
    return str(getattr(obj, "slug", None) or getattr(obj, "name", None) or obj.pk)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


# -- applying -----------------------------------------------------------------------------------
# Progress is told (phase, done, total) as an apply goes: e.g. ("routes", 4000, 10000).


def quiet(phase: str, done: int, total: int) -> None:
    pass


def apply(
    text: str,
    *,
    prune: bool = False,
    dry_run: bool = False,
    actor_label: str = "",
    progress: Progress = quiet,
) -> Result:
    """Make the database match the file; see the module docstring. Raises ConfigInvalid."""
    progress("reading", 0, 1)
    data, lines, problems = check(text)
    progress("reading", 1, 1)
    if not isinstance(data, dict):
        raise ConfigInvalid([error for _, error in problems])

    def attempt() -> Result:
        with acting("config", label=actor_label):
            with transaction.atomic():
                # Concurrent applies take turns (each sees the other's result, not a mix), and
                # admin API writes wait for them: one lock order (proxy/transactions.py).
                config_lock(shared=False)
                # Parts of the file the schema refused are skipped, the rest is still applied (and
                # rolled back), so that one run reports every mistake, not one round at a time.
                applier = _Applier(data, lines, prune, broken=[path for path, _ in problems], progress=progress)
                applier.run()
                errors = [error for _, error in problems] + applier.errors
                if errors:
                    errors.sort(key=lambda e: (e.line is None, e.line or 0))
                    raise ConfigInvalid(errors)  # rolls the transaction back
                if dry_run:
                    transaction.set_rollback(True)
        return Result(applier.changes, applied=not dry_run)

    # A deadlock with a write that does not take the lock (portal, Django admin) is retried.
    return retrying(attempt, what="configuration apply")


def diff(text: str, *, prune: bool = False) -> Result:
    return apply(text, prune=prune, dry_run=True)


class _Applier:
    def __init__(
        self,
        data: dict[str, Any],
        lines: Lines,
        prune: bool,
        broken: Sequence[Path_] = (),
        progress: Progress = quiet,
    ) -> None:
        self.data = data
        self.lines = lines
        self.prune = prune
        self.progress = progress
        # Paths the schema refused: items at or under them are not applied, and objects they
        # declare are not reported missing when others refer to them.
        self.broken = [tuple(p) for p in broken]
        self.skipped: dict[type[models.Model], set[Any]] = {}
        self.changes: list[Change] = []
        # Creations and updates by where the file has them: reported in file order, whatever
        # order the batches were written in.
        self.upserted: list[tuple[tuple[Any, ...], Change]] = []
        self.errors: list[ConfigError] = []
        # What the file declares, by kind: identity → saved instance (None when it failed).
        self.kept: dict[str, dict[Any, models.Model | None]] = {}
        self.routes: list[tuple[Path_, Route]] = []
        progress("loading the current configuration", 0, 1)
        self.current = Current()
        self.batches = {name: Batch(kind) for name, kind in _KINDS.items() if name in BATCHED}

    def salvage(self, kind: Kind, item: Any, path: Path_) -> dict[str, Any] | None:
        """The item without the fields the schema refused (they are reported already), so its
        other mistakes are found in the same run; None when the item itself (or what contains
        it, or its identity) was refused. Nothing is saved for good: any error rolls back."""
        if any(path[: len(b)] == b for b in self.broken):
            return None
        bad = {b[len(path)] for b in self.broken if len(b) > len(path) and b[: len(path)] == path}
        if not isinstance(item, dict) or kind.identity in bad:
            return None
        return {k: v for k, v in item.items() if k not in bad} if bad else item

    def skip(self, kind: Kind, item: Any) -> None:
        if isinstance(item, dict) and isinstance(item.get(kind.identity), str | int):
            self.skipped.setdefault(kind.model, set()).add(item[kind.identity])

    def error(self, path: Path_, message: str) -> None:
        self.errors.append(ConfigError(self.lines.at(path), path_text(path), message))

    def refused(self, path: Path_, exc: Exception) -> None:
        # The file's fault (a value too large, a name taken meanwhile). Anything else the
        # database raises (a lost race, a failing audit insert, the database gone) is not:
        # it propagates, to be retried or answered 409/503.
        self.error(path, f"the database refused it: {exc}")

    def flush(self, kind: Kind) -> None:
        if kind.name in self.batches:
            self.progress(f"writing {kind.section}", 0, len(self.batches[kind.name].writes))
            self.batches[kind.name].flush(self.refused, self.progress)

    def run(self) -> None:
        for order, kind in enumerate(TOP_KINDS):
            items = self.data.get(kind.section)
            kept = self.kept.setdefault(kind.name, {})
            if not isinstance(items, list):
                continue  # the schema said so
            parents: list[tuple[models.Model | None, dict[str, Any], Path_]] = []
            for index, whole in enumerate(items):
                self.progress(kind.section, index, len(items))
                path: Path_ = (kind.section, index)
                item = self.salvage(kind, whole, path)
                if item is None:
                    self.skip(kind, whole)
                    continue
                identity = item[kind.identity]
                if identity in kept:
                    self.error((*path, kind.identity), f"another {kind.name} above is also named {identity!r}")
                    continue
                obj = self.upsert(kind, item, path, order=order)
                kept[identity] = obj
                if kind.nested:
                    parents.append((obj, item, path))
            self.progress(kind.section, len(items), len(items))
            self.flush(kind)  # the nested objects and the next kinds refer to these by key
            for obj, item, path in parents:
                self.nested(NESTED[kind.section], obj, item.get(kind.nested) or [], (*path, kind.nested), order)
            if kind.nested:
                self.flush(NESTED[kind.section])
        self.changes = [change for _, change in sorted(self.upserted, key=lambda pair: pair[0])]
        if self.prune:
            self.progress("pruning", 0, 1)
            self.prune_missing()
        self.progress("checking route conflicts", 0, len(self.routes))
        self.check_routes()

    def nested(
        self, kind: Kind, parent: models.Model | None, items: list[dict[str, Any]], path: Path_, order: int
    ) -> None:
        kept = self.kept.setdefault(kind.name, {})
        seen: set[Any] = set()
        for index, whole in enumerate(items):
            item = self.salvage(kind, whole, (*path, index))
            if item is None:
                continue
            identity = item[kind.identity]
            if identity in seen:
                self.error((*path, index, kind.identity), f"another {kind.name} above is also {identity!r}")
                continue
            seen.add(identity)
            if parent is not None:
                kept[(parent.pk, identity)] = self.upsert(kind, item, (*path, index), parent=parent, order=order)

    def resolve(self, kind: Kind, item: dict[str, Any], path: Path_) -> tuple[dict[str, Any], set[str]]:
        """The model field values the item asks for: defaults for what it leaves out, related
        objects looked up by slug or name; and the fields naming objects that do not exist
        (an unsaved stand-in takes their place, so the item's other fields can still be judged)."""
        values: dict[str, Any] = {}
        missing: set[str] = set()
        for name in kind.fields:
            value = kind.normalise(name, item[name] if name in item else kind.default(name))
            if name in kind.refs and value is not None:
                model, lookup = kind.refs[name]
                related = self.current.named_object(model, value)
                if related is None:
                    if value not in self.skipped.get(model, set()):  # else: its own error says why
                        self.error((*path, name), f"no {model._meta.verbose_name} named {value!r}")
                    missing.add(name)
                    related = model(**{lookup: value})
                value = related
            values[name] = value
        return values, missing

    def validate(self, kind: Kind, obj: models.Model) -> dict[str, list[str]]:
        """The model's own validation (``full_clean()``), its errors by field, without the
        queries whose answer is already known: references were just looked up (so they
        exist), and a batched kind's only uniqueness is its identity, checked in the file.
        Route conflicts are judged later, on the final state (``check_routes``)."""
        exclude = {name for name in kind.refs if getattr(obj, name) is not None and getattr(obj, name).pk}
        if kind.parent:
            exclude.add(kind.parent)
        if kind.name not in BATCHED:
            try:
                obj.full_clean(exclude=exclude)
            except ValidationError as exc:
                return exc.message_dict
            return {}
        errors: dict[str, Any] = {}
        try:
            obj.clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        try:
            if isinstance(obj, Route):
                obj.clean_definition()
            else:
                obj.clean()
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        return ValidationError(errors).message_dict if errors else {}

    def upsert(
        self, kind: Kind, item: dict[str, Any], path: Path_, parent: models.Model | None = None, order: int = 0
    ) -> models.Model | None:
        values, missing = self.resolve(kind, item, path)
        if missing:
            self.judge_only(kind, values, missing, path, parent)
            return None
        current = self.current.find(kind, values[kind.identity], parent)
        obj = copy.copy(current) if current is not None else kind.model()
        if parent is not None:
            setattr(obj, kind.parent, parent)
        for name, value in values.items():
            setattr(obj, name, value)
        problems = self.validate(kind, obj)
        if problems:
            for name, messages in problems.items():
                where = (*path, name) if name in kind.fields else path
                for message in messages:
                    self.error(where, message)
            return None
        if current is not None and kind.spec(current, copied=False) == kind.spec(obj, copied=False):
            return current
        before = kind.spec(current) if current is not None else None
        after = kind.spec(obj)
        label = self.label(kind, values, parent)
        changed = tuple(k for k in kind.fields if before is not None and before[k] != after[k])
        batch = self.batches.get(kind.name)
        if batch is not None:
            batch.create(obj, path) if current is None else batch.update(obj, current, path, changed)
        else:
            try:
                with transaction.atomic():
                    obj.save()
            except (DataError, IntegrityError) as exc:
                self.refused(path, exc)
                return None
        self.current.saved(kind, obj, parent)
        if before is None:
            shown = {k: (None, v) for k, v in kind.compact(after).items() if k != kind.identity}
            change = Change("create", kind.name, label, shown)
        else:
            change = Change("update", kind.name, label, {k: (before[k], after[k]) for k in changed})
        self.upserted.append(((order, *path[1:]), change))
        if kind is ROUTE:
            assert isinstance(obj, Route)
            self.routes.append((path, obj))
        return obj

    def judge_only(
        self, kind: Kind, values: dict[str, Any], missing: set[str], path: Path_, parent: models.Model | None
    ) -> None:
        """Report the mistakes of an item that names a missing object, without saving it."""
        obj = kind.model()
        if parent is not None:
            setattr(obj, kind.parent, parent)
        for name, value in values.items():
            setattr(obj, name, value)
        try:
            with transaction.atomic():  # a query that fails on the stand-in must not spoil the rest
                obj.full_clean(exclude=[*missing, *([kind.parent] if parent is None and kind.parent else [])])
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                if name == NON_FIELD_ERRORS:
                    continue  # conflicts with other objects: judged once the references exist
                for message in messages:
                    self.error((*path, name) if name in kind.fields else path, message)
        except (AttributeError, TypeError, ValueError, DataError, IntegrityError):
            pass  # a check that needs the missing object itself: that object's error is reported

    def label(self, kind: Kind, values: dict[str, Any], parent: models.Model | None) -> str:
        identity = values[kind.identity]
        identity = getattr(identity, kind.refs[kind.identity][1]) if kind.identity in kind.refs else identity
        return f"{_identity(parent)}/{identity}" if parent is not None else str(identity)

    def prune_missing(self) -> None:
        """Delete what the file's sections leave out: dependants first."""
        sections = set(self.data)
        if "partners" in sections:
            kept = self.kept.get("subscription", {})
            declared = {p.pk for p in self.kept.get("partner", {}).values() if p is not None}
            for sub in Subscription.objects.filter(partner__in=declared).select_related("partner", "product"):
                if (sub.partner_id, sub.product.slug) not in kept:
                    self.delete(SUBSCRIPTION, sub, f"{sub.partner.slug}/{sub.product.slug}", "partners")
            kept_partners = self.kept.get("partner", {})
            for partner in (p for p in Partner.objects.all() if p.slug not in kept_partners):
                keys = partner.keys.count()
                note = f"also deletes its {keys} API key(s) and its usage history" if keys else ""
                self.delete(PARTNER, partner, partner.slug, "partners", note)
        if "routes" in sections:
            kept_routes = self.kept.get("route", {})
            for route in (r for r in Route.objects.all() if r.name not in kept_routes):
                self.delete(ROUTE, route, route.name, "routes")
        if "upstreams" in sections:
            kept = self.kept.get("target", {})
            declared = {u.pk for u in self.kept.get("upstream", {}).values() if u is not None}
            for target in Target.objects.filter(upstream__in=declared).select_related("upstream"):
                if (target.upstream_id, target.url) not in kept:
                    self.delete(TARGET, target, f"{target.upstream.name}/{target.url}", "upstreams")
            kept_upstreams = self.kept.get("upstream", {})
            for upstream in (u for u in Upstream.objects.all() if u.name not in kept_upstreams):
                self.delete(UPSTREAM, upstream, upstream.name, "upstreams")
        if "plans" in sections:
            kept_plans = self.kept.get("plan", {})
            for plan in (p for p in Plan.objects.all() if p.slug not in kept_plans):
                self.delete(PLAN, plan, plan.slug, "plans")
        if "products" in sections:
            kept_products = self.kept.get("product", {})
            for product in (p for p in ApiProduct.objects.all() if p.slug not in kept_products):
                if self.product_still_guards(product):
                    self.delete(PRODUCT, product, product.slug, "products")

    def product_still_guards(self, product: ApiProduct) -> bool:
        """Deleting a product would quietly widen access (a route without a product admits every
        active partner; a key limited to it would allow all products): refuse instead."""
        routes = sorted(product.routes.values_list("name", flat=True))
        keys = sorted(product.keys.filter(revoked_at__isnull=True).values_list("prefix", flat=True))
        if routes:
            self.error(
                ("products",),
                f"--prune would delete product {product.slug!r}, which routes "
                f"{', '.join(routes[:5])} still require; "
                "add it back or change those routes",
            )
        if keys:
            self.error(
                ("products",),
                f"--prune would delete product {product.slug!r}, and API keys "
                f"{', '.join(keys[:5])} limited to it would then allow every product; "
                "revoke them or change their products first",
            )
        return not routes and not keys

    def delete(self, kind: Kind, obj: models.Model, label: str, section: str, note: str = "") -> None:
        try:
            with transaction.atomic():
                obj.delete()
        except (models.ProtectedError, models.RestrictedError) as exc:
            users = sorted({f"{o._meta.verbose_name} {o}" for o in list(exc.args[1])[:5]})
            self.error(
                (section,),
                f"--prune would delete {kind.name} {label!r}, but {', '.join(users)} still "
                "use it; add it back to the file or change those too",
            )
            return
        self.current.deleted(kind, obj)
        self.changes.append(Change("delete", kind.name, label, note=note))

    def check_routes(self) -> None:
        """Route conflicts, judged now that every route of the file is in place (two routes that
        swap priorities must not conflict with each other's old state): every route as the apply
        leaves it (``Current`` follows the saves and deletions), grouped by what a conflict needs
        equal, in the route table's order. A route with upstream rules is judged whole again, as
        its rules name upstreams that pruning may have just deleted."""
        if not self.routes:
            return
        groups: dict[tuple[Any, ...], list[Route]] = {}
        for route in self.current.rows[ROUTE.name].values():
            assert isinstance(route, Route)
            if route.enabled:
                groups.setdefault(_conflict_key(route), []).append(route)
        for group in groups.values():
            group.sort(key=lambda route: route.name)  # one priority per group: the table's order
        for done, (path, route) in enumerate(self.routes):
            if done % 1000 == 0:
                self.progress("checking route conflicts", done, len(self.routes))
            if route.upstream_rules:
                route.refresh_from_db()
                try:
                    route.full_clean()
                except ValidationError as exc:
                    for name, messages in exc.message_dict.items():
                        for message in messages:
                            self.error((*path, name) if name in ROUTE.fields else path, message)
                continue
            other = route.conflicting(groups.get(_conflict_key(route), ()))
            if other is not None:
                for message in Route.conflict_error(other).messages:
                    self.error(path, message)
        self.progress("checking route conflicts", len(self.routes), len(self.routes))


def _conflict_key(route: Route) -> tuple[Any, ...]:
    """What two routes must share to conflict (``Route.conflicting`` then judges methods and
    protocols): many routes share a path and priority on different hosts."""
    return (
        route.path_type,
        route.path,
        route.priority,
        tuple(sorted(route.hosts)),
        json.dumps(route.headers, sort_keys=True),
        json.dumps(route.query, sort_keys=True),
    )
