"""The kinds of objects a configuration file holds, how each is described in the file, and the
export of the database's configuration."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.db import models

from proxy.declarative.format import FORMAT_VERSION, dump_yaml
from proxy.models import ApiProduct, Partner, Plan, Route, Subscription, Target, Upstream


# -- kinds -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Kind:
    name: str  # as shown in diffs
    section: str  # top-level YAML key, or the nested key under the parent
    model: type[models.Model]
    identity: str
    fields: tuple[str, ...]  # YAML keys = model field names, in the order files show them
    required: tuple[str, ...]
    refs: Mapping[str, tuple[type[models.Model], str]] = field(default_factory=dict)
    parent: str = ""  # the model field pointing at the enclosing object (nested kinds)
    nested: str = ""  # the nested kind's section under this one

    def default(self, name: str) -> Any:
        return copy.copy(_default(self.model, name))  # a fresh list or dict for each object

    def normalise(self, name: str, value: Any) -> Any:
        """One form per meaning: a matcher without ``match``/``value`` is stored, and compared,
        with the defaults the gateway applies (exact, empty)."""
        if name in MATCHER_FIELDS and isinstance(value, list):
            return [
                {"name": m.get("name", ""), "match": m.get("match", "exact"), "value": m.get("value", "")}
                if isinstance(m, dict)
                else m
                for m in value
            ]
        return value

    def spec(self, obj: models.Model, *, copied: bool = True) -> dict[str, Any]:
        """The object as the file describes it (related objects by slug or name). JSON values
        are copies, so a diff keeps the old value; ``copied=False`` shares them, for a comparison
        that is thrown away (most objects of a re-apply have not changed)."""
        out: dict[str, Any] = {}
        for name in self.fields:
            if name in self.refs:
                related = getattr(obj, name)
                out[name] = getattr(related, self.refs[name][1]) if related is not None else None
            else:
                value = getattr(obj, name)
                if copied and isinstance(value, list | dict):
                    value = copy.deepcopy(value)
                out[name] = self.normalise(name, value)
        return out

    def compact(self, spec: dict[str, Any]) -> dict[str, Any]:
        """What an export shows: defaults left out."""
        out = {k: v for k, v in spec.items() if k in self.required or v != _default(self.model, k)}
        for name in MATCHER_FIELDS & out.keys():
            out[name] = [
                {k: v for k, v in m.items() if (k, v) not in (("match", "exact"), ("value", ""))} for m in out[name]
            ]
        return out


MATCHER_FIELDS = frozenset({"headers", "query"})


@cache
def _default(model: type[models.Model], name: str) -> Any:
    """The field's default; asked once per field, not once per object of a file (10,000 routes
    × 60 fields)."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    return field.get_default()


# What a file never holds: row identity, timestamps (and, by the models' design, no secrets:
# API keys and admin tokens are not kinds of this format).
_NOT_IN_FILES = frozenset({"id", "created", "updated"})
# The related models a file can name, by the field that names them.
IDENTITIES: dict[type[models.Model], str] = {ApiProduct: "slug", Plan: "slug", Upstream: "name", Partner: "slug"}


def define(
    name: str,
    section: str,
    model: type[models.Model],
    identity: str,
    *,
    first: tuple[str, ...] = (),
    parent: str = "",
    nested: str = "",
) -> Kind:
    """A kind whose fields are the model's editable fields: a field added to the model is in the
    format (and its JSON Schema) at once. ``first`` puts the fields people look for first."""
    names = [
        f.name
        for f in model._meta.concrete_fields
        if f.editable and not f.primary_key and f.name not in _NOT_IN_FILES and f.name != parent
    ]
    ordered = [identity, *(n for n in first if n in names and n != identity)]
    fields = tuple(ordered + [n for n in names if n not in ordered])
    required = tuple(n for n in fields if _required(model._meta.get_field(n)))
    refs: dict[str, tuple[type[models.Model], str]] = {}
    for field_name in fields:
        related = model._meta.get_field(field_name).related_model
        if isinstance(related, type) and issubclass(related, models.Model):
            refs[field_name] = (related, IDENTITIES[related])
    return Kind(name, section, model, identity, fields, required, refs, parent, nested)


def _required(field: Any) -> bool:
    return not field.has_default() and not field.null and not field.blank


PRODUCT = define("product", "products", ApiProduct, "slug", first=("name",))
PLAN = define("plan", "plans", Plan, "slug", first=("name",))
TARGET = define("target", "targets", Target, "url", parent="upstream")
UPSTREAM = define("upstream", "upstreams", Upstream, "name", nested="targets")
ROUTE = define(
    "route",
    "routes",
    Route,
    "name",
    first=(
        "enabled",
        "upstream",
        "priority",
        "hosts",
        "path_type",
        "path",
        "methods",
        "headers",
        "query",
        "protocols",
        "product",
        "auth",
    ),
)
SUBSCRIPTION = define("subscription", "subscriptions", Subscription, "product", first=("plan",), parent="partner")
PARTNER = define("partner", "partners", Partner, "slug", first=("name", "status"), nested="subscriptions")
TOP_KINDS = (PRODUCT, PLAN, UPSTREAM, ROUTE, PARTNER)  # the order of the file and of applying
NESTED = {"upstreams": TARGET, "partners": SUBSCRIPTION}


# -- export -------------------------------------------------------------------------------------
def export_data() -> dict[str, Any]:
    data: dict[str, Any] = {"version": FORMAT_VERSION}
    data["products"] = [PRODUCT.compact(PRODUCT.spec(p)) for p in ApiProduct.objects.order_by("slug")]
    data["plans"] = [PLAN.compact(PLAN.spec(p)) for p in Plan.objects.order_by("slug")]
    targets: dict[int, list[dict[str, Any]]] = {}
    for target in Target.objects.order_by("url"):
        targets.setdefault(target.upstream_id, []).append(TARGET.compact(TARGET.spec(target)))
    data["upstreams"] = []
    for upstream in Upstream.objects.order_by("name"):
        item = UPSTREAM.compact(UPSTREAM.spec(upstream))
        if upstream.pk in targets:
            item["targets"] = targets[upstream.pk]
        data["upstreams"].append(item)
    data["routes"] = [
        ROUTE.compact(ROUTE.spec(r)) for r in Route.objects.select_related("upstream", "product").order_by("name")
    ]
    subscriptions: dict[int, list[dict[str, Any]]] = {}
    for sub in Subscription.objects.select_related("product", "plan").order_by("product__slug"):
        subscriptions.setdefault(sub.partner_id, []).append(SUBSCRIPTION.compact(SUBSCRIPTION.spec(sub)))
    data["partners"] = []
    for partner in Partner.objects.order_by("slug"):
        item = PARTNER.compact(PARTNER.spec(partner))
        if partner.pk in subscriptions:
            item["subscriptions"] = subscriptions[partner.pk]
        data["partners"].append(item)
    return data


def export_yaml() -> str:
    return dump_yaml(export_data())
