"""The shapes of the configuration's JSON fields, for Django admin's forms (proxy/admin.py).

Django's JSON form field says only "Enter a valid JSON." and accepts any JSON. Here each field
says what it expects, with an example, both when the text is not JSON (and where it breaks) and
when it is JSON of the wrong shape; each field is checked on its own, so one save reports every
field's mistake at once. The models' ``clean()`` still runs the data plane's compilers for what
only they can judge (a regex, a CIDR, an unknown upstream).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from proxy.gateway.routing import MATCH_TYPES

Check = Callable[[Any], str | None]  # the problem, or None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number"
    )


def _strings(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"got {_kind(value)}"
    bad = [i for i, v in enumerate(value) if not isinstance(v, str)]
    return f"item {bad[0]} is {_kind(value[bad[0]])}, not a string" if bad else None


def _statuses(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"got {_kind(value)}"
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or not 100 <= v <= 599]
    return f"{json.dumps(bad[0])} is not an HTTP status (100-599)" if bad else None


def _matchers(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"got {_kind(value)}"
    for i, matcher in enumerate(value):
        if not isinstance(matcher, dict):
            return f"item {i} is {_kind(matcher)}, not an object"
        unknown = sorted(set(matcher) - {"name", "match", "value"})
        if unknown:
            return f"item {i} has unknown keys {', '.join(unknown)} (allowed: name, match, value)"
        if not isinstance(matcher.get("name"), str) or not matcher["name"]:
            return f"item {i} needs a name"
        if matcher.get("match", "exact") not in MATCH_TYPES:
            return f"item {i}: match must be one of {', '.join(MATCH_TYPES)}"
    return None


def _transform(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"got {_kind(value)}"
    unknown = sorted(set(value) - {"remove", "rename", "set", "add"})
    if unknown:
        return f"unknown keys {', '.join(unknown)} (allowed: remove, rename, set, add)"
    if not isinstance(value.get("remove", []), list):
        return '"remove" must be a list of header names'
    for key in ("rename", "set", "add"):
        if not isinstance(value.get(key, {}), dict):
            return f'"{key}" must be an object of header name → value'
    return None


def _rules(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"got {_kind(value)}"
    for i, rule in enumerate(value):
        if not isinstance(rule, dict):
            return f"item {i} is {_kind(rule)}, not an object"
        if not isinstance(rule.get("upstream"), str):
            return f'item {i} needs "upstream": the name of the upstream to send to'
    return None


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"got {_kind(value)}"


# field name → (what is expected, the check, the empty value)
SHAPES: dict[str, tuple[str, Check, Any]] = {
    "hosts": ('a list of host names, e.g. ["api.example.com", "*.example.com"]', _strings, []),
    "methods": ('a list of methods, e.g. ["GET", "POST"]', _strings, []),
    "protocols": ('a list, e.g. ["http"], ["websocket"] or ["http", "websocket"]', _strings, []),
    "headers": ('a list of matchers, e.g. [{"name": "X-API-Version", "match": "exact", "value": "2"}]', _matchers, []),
    "query": ('a list of matchers, e.g. [{"name": "version", "match": "exact", "value": "2"}]', _matchers, []),
    "upstream_rules": (
        'a list of rules, e.g. [{"header": "X-API-Version", "value": "2", "upstream": "appliances-v2"}]',
        _rules,
        [],
    ),
    "retry_statuses": ("a list of HTTP statuses, e.g. [502, 503]", _statuses, []),
    "failure_statuses": ("a list of HTTP statuses, e.g. [502, 503, 504]", _statuses, []),
    "health_check_statuses": ("a list of HTTP statuses, e.g. [200, 204]", _statuses, []),
    "cache_headers": ('a list of header names, e.g. ["Accept", "Accept-Language"]', _strings, []),
    "cors_origins": ('a list of origins, e.g. ["https://app.example.com"] or ["*"]', _strings, []),
    "cors_methods": ('a list of methods, e.g. ["GET", "PUT"]', _strings, []),
    "cors_headers": ('a list of header names, e.g. ["Authorization", "Content-Type"]', _strings, []),
    "cors_expose_headers": ('a list of header names, e.g. ["RateLimit-Remaining"]', _strings, []),
    "ip_allow": ('a list of CIDRs, e.g. ["203.0.113.0/24", "2001:db8::/32"]', _strings, []),
    "ip_deny": ('a list of CIDRs, e.g. ["198.51.100.7/32"]', _strings, []),
    "request_transform": (
        'an object, e.g. {"remove": ["X-Debug"], "rename": {"X-Old": "X-New"}, "set": {"X-Env": "prod"}}',
        _transform,
        {},
    ),
    "response_transform": ('an object, e.g. {"set": {"Cache-Control": "no-store"}}', _transform, {}),
    "algorithms": ('a list of JWT algorithms, e.g. ["RS256", "ES256"]', _strings, []),
    "openapi": ('an OpenAPI 3 document, e.g. {"openapi": "3.0.3", "info": {...}, "paths": {...}}', _object, None),
}


class ShapedJSONField(forms.JSONField):
    """A JSON form field that names the expected shape in every error. An empty box is the
    field's empty value ([] or {}), not null, which the column would refuse."""

    def __init__(self, *, expected: str, check: Check, empty: Any, **kwargs: Any) -> None:
        self.expected, self.check, self.empty = expected, check, empty
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "cols": 80, "spellcheck": "false"}))
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return self.empty
        if self.disabled or not isinstance(value, str):
            return value
        try:
            return json.loads(value, cls=self.decoder)
        except json.JSONDecodeError as exc:
            hint = " (JSON needs double quotes)" if "'" in value else ""
            raise ValidationError(
                f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}{hint}. Expected {self.expected}.",
                code="invalid",
            ) from None

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value is None or value == self.empty:
            return
        problem = self.check(value)
        if problem is not None:
            raise ValidationError(f"Expected {self.expected}; {problem}.", code="shape")


def formfield(db_field: Any, **kwargs: Any) -> forms.Field | None:
    """For ``ModelAdmin.formfield_for_dbfield``: the shaped field for a known JSON field."""
    shape = SHAPES.get(db_field.name)
    if shape is None:
        return None
    expected, check, empty = shape
    if db_field.null and empty is None:
        empty = None
    field: forms.Field | None = db_field.formfield(
        form_class=ShapedJSONField, expected=expected, check=check, empty=empty, **kwargs
    )
    return field
