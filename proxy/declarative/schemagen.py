"""The JSON Schema of the configuration file, built from the models: types, limits and choices of
each field come from its model field, descriptions from its help text. A few fields whose JSON
has a known shape (route matchers, hosts, methods) get a precise schema here.

proxy/config.schema.json is this schema as published (for editors and CI); a test keeps the two
equal. Regenerate it with ``manage.py gatewayconfig schema > proxy/config.schema.json``.
"""

from __future__ import annotations

import json
from typing import Any

from django.core import validators
from django.db import models

from proxy.declarative.kinds import NESTED, TOP_KINDS, Kind
from proxy.gateway.routing import MATCH_TYPES, PROTOCOLS

SLUG = {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$", "minLength": 1, "maxLength": 100}
MATCHER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "match": {"enum": list(MATCH_TYPES), "default": "exact"},
        "value": {"type": "string", "maxLength": 1000, "default": ""},
    },
}
# Fields whose JSON content has a known shape.
SHAPES: dict[tuple[str, str], dict[str, Any]] = {
    ("route", "hosts"): {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 253}},
    ("route", "methods"): {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 20}},
    ("route", "headers"): {"type": "array", "items": {"$ref": "#/$defs/matcher"}},
    ("route", "query"): {"type": "array", "items": {"$ref": "#/$defs/matcher"}},
    ("route", "protocols"): {"type": "array", "items": {"enum": list(PROTOCOLS)}},
    ("product", "openapi"): {"type": ["object", "null"]},
}
SECTIONS = {
    "products": "API products: named groups of routes that partners subscribe to.",
    "plans": "Rate limits and quotas.",
    "upstreams": "Backend services and their servers (targets).",
    "routes": "Which requests go to which upstream, with what authentication and limits.",
    "partners": "Organisations that call the API, with their subscriptions (never their keys).",
}


# The PostgreSQL ranges (SQLite's are wider): the schema must not depend on the database.
_INT_RANGES: list[tuple[type[models.Field[Any, Any]], int, int]] = [
    (models.PositiveSmallIntegerField, 0, 32_767),
    (models.PositiveBigIntegerField, 0, 2**63 - 1),
    (models.PositiveIntegerField, 0, 2**31 - 1),
    (models.SmallIntegerField, -32_768, 32_767),
    (models.BigIntegerField, -(2**63), 2**63 - 1),
    (models.IntegerField, -(2**31), 2**31 - 1),
]


def _bounds(field: models.Field[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cls, low, high in _INT_RANGES:
        if isinstance(field, cls):
            out = {"minimum": low, "maximum": high}
            break
    for validator in getattr(field, "_validators", ()):  # the model's own, not the database backend's
        if isinstance(validator, validators.MinValueValidator):
            out["minimum"] = max(out.get("minimum", validator.limit_value), validator.limit_value)
        elif isinstance(validator, validators.MaxValueValidator):
            out["maximum"] = min(out.get("maximum", validator.limit_value), validator.limit_value)
    return out


def field_schema(kind: Kind, name: str) -> dict[str, Any]:
    field = kind.model._meta.get_field(name)
    assert isinstance(field, models.Field)
    schema: dict[str, Any]
    if (kind.name, name) in SHAPES:
        schema = dict(SHAPES[(kind.name, name)])
    elif field.is_relation:
        schema = {"$ref": "#/$defs/slug"}
    elif field.choices:
        schema = {"enum": [value for value, _ in field.flatchoices]}
    elif isinstance(field, models.BooleanField):
        schema = {"type": "boolean"}
    elif isinstance(field, models.IntegerField):
        schema = {"type": "integer", **_bounds(field)}
    elif isinstance(field, models.FloatField):
        schema = {"type": "number", **_bounds(field)}
    elif isinstance(field, models.SlugField):
        schema = dict(SLUG, maxLength=field.max_length)
    elif isinstance(field, models.CharField | models.TextField):
        schema = {"type": "string"}
        if field.max_length:
            schema["maxLength"] = field.max_length
        if name in kind.required:
            schema["minLength"] = 1
    elif isinstance(field, models.JSONField):
        default = field.get_default()
        schema = (
            {"type": "array"} if isinstance(default, list) else {"type": "object"} if isinstance(default, dict) else {}
        )
    else:  # a field type this format does not know yet: accept any JSON, the model validates it
        schema = {}
    if field.null:
        if "$ref" in schema:
            schema = {"anyOf": [schema, {"type": "null"}]}
        elif "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        elif isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
    if name not in kind.required:
        schema["default"] = kind.default(name)
    if field.help_text:
        schema["description"] = str(field.help_text)
    return schema


def kind_schema(kind: Kind) -> dict[str, Any]:
    properties = {name: field_schema(kind, name) for name in kind.fields}
    if kind.nested:
        nested = NESTED[kind.section]
        properties[kind.nested] = {"type": "array", "items": {"$ref": f"#/$defs/{nested.name}"}, "default": []}
    return {"type": "object", "additionalProperties": False, "required": list(kind.required), "properties": properties}


def build_schema() -> dict[str, Any]:
    """The schema as plain JSON data."""
    built: dict[str, Any] = json.loads(json.dumps(_schema()))
    return built


def _schema() -> dict[str, Any]:
    defs: dict[str, Any] = {"slug": SLUG, "matcher": MATCHER}
    for kind in (*TOP_KINDS, *NESTED.values()):
        defs[kind.name] = kind_schema(kind)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://apigw.invalid/config.schema.json",
        "title": "apigw gateway configuration",
        "description": "Products, plans, upstreams, routes and partners of the gateway, as kept in Git and applied "
        "with `manage.py gatewayconfig apply`. Never holds secrets. See docs/config.md.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "version": {"const": 1, "description": "Format version; 1."},
            **{
                kind.section: {
                    "type": "array",
                    "description": SECTIONS[kind.section],
                    "items": {"$ref": f"#/$defs/{kind.name}"},
                }
                for kind in TOP_KINDS
            },
        },
        "$defs": defs,
    }
