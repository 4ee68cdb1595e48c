"""Serializer fields that refuse, with a 400, input the database would fail on with a 500."""

from __future__ import annotations

from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers


def has_unstorable_text(value: Any) -> bool:
    """NUL characters and lone surrogates: PostgreSQL stores neither in text or jsonb."""
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(has_unstorable_text(k) or has_unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_unstorable_text(v) for v in value)
    return False


class SlugLookupField(serializers.SlugRelatedField):
    """A related object by its slug or name; anything but a clean string is simply invalid."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            ProhibitNullCharactersValidator()(data)
        except Exception:
            self.fail("invalid")
        return super().to_internal_value(data)


class StorableJSONField(serializers.JSONField):
    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if has_unstorable_text(value):
            raise serializers.ValidationError("Text may not contain NUL characters or unpaired surrogates.")
        return value
