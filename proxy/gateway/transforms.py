"""Request and response header transforms of a route: remove, rename, set, add — in that order.

``{"remove": ["X-Debug"], "rename": {"X-Old": "X-New"}, "set": {"X-Env": "prod"},
"add": {"X-Tag": "a"}}``: ``set`` replaces every value, ``add`` appends one more.

Request transforms act on what the client sent, before the gateway adds its own headers
(``X-Forwarded-For`` is appended to, identity headers replace). Response transforms act on what
the upstream (or the cache) answered, before the gateway adds ``Via``, ``X-Request-ID``,
rate-limit and CORS headers. Headers that frame the message and those only the gateway sets
(``headers.GATEWAY_OWNED``: ``X-Partner-ID``, ``Host``, ``X-Request-ID`` …) cannot be named.
"""

from __future__ import annotations

import re
from typing import Any

from multidict import CIMultiDict

from proxy.gateway.headers import GATEWAY_OWNED, HOP_BY_HOP
from proxy.gateway.spec import TransformSpec

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Framing, and what the gateway alone says (identity, request id, Via): never transformed.
_RESERVED = HOP_BY_HOP | GATEWAY_OWNED
OPERATIONS = ("remove", "rename", "set", "add")


def _name(value: Any, where: str) -> str:
    name = str(value).strip()
    if not _TOKEN.match(name):
        raise ValueError(f"{where}: {value!r} is not a header name")
    if name.lower() in _RESERVED:
        raise ValueError(f"{where}: {name} is set by the gateway alone and cannot be transformed")
    return name


def _value(value: Any, where: str) -> str:
    text = str(value)
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError(f"{where}: header values cannot contain line breaks")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: header values must be Latin-1 text") from None
    return text


class HeaderTransform:
    __slots__ = ("remove", "rename", "set", "add")

    def __init__(self, spec: TransformSpec | None, where: str = "headers") -> None:
        spec = spec or {}
        unknown = set(spec) - set(OPERATIONS)
        if unknown:
            raise ValueError(f"{where}: unknown operations {', '.join(sorted(unknown))} (use {', '.join(OPERATIONS)})")
        remove = spec.get("remove") or []
        if not isinstance(remove, list):
            raise ValueError(f"{where}: remove is a list of header names")
        for op in ("rename", "set", "add"):
            if not isinstance(spec.get(op) or {}, dict):
                raise ValueError(f"{where}: {op} maps header names to {'names' if op == 'rename' else 'values'}")
        self.remove = frozenset(_name(n, where).lower() for n in remove)
        self.rename = tuple(
            (_name(old, where).lower(), _name(new, where).lower()) for old, new in (spec.get("rename") or {}).items()
        )
        self.set = tuple((_name(n, where).lower(), _value(v, where)) for n, v in (spec.get("set") or {}).items())
        self.add = tuple((_name(n, where).lower(), _value(v, where)) for n, v in (spec.get("add") or {}).items())

    def __bool__(self) -> bool:
        return bool(self.remove or self.rename or self.set or self.add)

    def apply_request(self, headers: CIMultiDict[str]) -> None:
        """Names go out in lower case, as the client's do: aiohttp merges repeated headers only
        when their names are spelt alike."""
        for name in self.remove:
            headers.popall(name, None)
        for old, new in self.rename:
            values = headers.popall(old, None)
            if values:
                headers.popall(new, None)
                for value in values:
                    headers.add(new, value)
        for name, value in self.set:
            headers[name] = value
        for name, value in self.add:
            headers.add(name, value)

    def apply_response(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """``headers`` have lower-case names (headers.filter_response_headers)."""
        out = [(n, v) for n, v in headers if n.decode("latin-1") not in self.remove] if self.remove else headers
        for old, new in self.rename:
            old_b, new_b = old.encode(), new.encode()
            if any(n == old_b for n, _ in out):
                out = [(new_b if n == old_b else n, v) for n, v in out if n != new_b]
        for name, value in self.set:
            name_b = name.encode()
            out = [(n, v) for n, v in out if n != name_b]
            out.append((name_b, value.encode("latin-1")))
        for name, value in self.add:
            out.append((name.encode(), value.encode("latin-1")))
        return out
