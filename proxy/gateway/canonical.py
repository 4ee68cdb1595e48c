"""One canonical form of each request path: what is matched, authorised, cached and forwarded.

Built from the raw request target (never from a server's decoded copy), once per request:

- refused (400): a path that is not absolute, a backslash, NUL or another control character
  (raw or percent-encoded), an invalid percent-encoding, dot segments that climb above the root;
- ``//`` collapsed (Envoy ``merge_slashes``): an upstream that merges slashes must not see a
  path the gateway matched differently;
- percent-encoding normalised (RFC 3986 6.2.2): unreserved characters decoded, hex upper-cased;
  an encoded dot segment (``%2e%2E``) is a dot segment, resolved like ``..``;
- ``%2F`` stays encoded and is *not* a separator: the route decides (``encoded_slashes``:
  ``reject`` by default, or ``keep`` to match and forward it encoded; Envoy
  ``path_with_escaped_slashes_action``);
- ``;`` path parameters are flagged: routes refuse them unless they allow them (an upstream that
  strips ``;jsessionid=…`` or reads ``..;`` as ``..`` would see another path).

``Canonical.path`` (decoded, except ``%2F`` and ``%25`` which stay as text, so that neither an
encoded slash nor an encoded percent sign can change what a segment is) is what routes match;
``Canonical.target`` (encoded) is what the upstream receives when no rewrite applies, so the
upstream gets exactly the path that was matched.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote

from proxy.gateway.errors import BadRequest

_HEX = "0123456789ABCDEFabcdef"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters no path may carry, raw or percent-encoded: backslash (Windows and some servers read
# it as a separator), NUL and the other controls.
_FORBIDDEN = frozenset(chr(c) for c in (*range(0x00, 0x20), 0x7F)) | {"\\"}
_ENCODED_SLASH = re.compile("%2F")
_KEPT_ENCODED = re.compile("(%2F|%25)")  # hex is upper-case once normalised
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(value: str) -> str:
    """Lower-case A–Z only: lengths never change, so a prefix's length still cuts the path."""
    return value.translate(_ASCII_LOWER)


class Canonical(NamedTuple):  # a tuple: built on every request, and cheaper than a dataclass
    path: str  # decoded, for matching; "%2F" and "%25" kept as text
    target: str  # encoded, for the upstream
    encoded_slash: bool
    parameters: bool  # a ";" in some segment


def _normalise_segment(segment: str) -> str:
    """Decode unreserved characters, upper-case the hex of the others, refuse bad escapes."""
    if "%" not in segment:
        return segment
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        pair = segment[i + 1 : i + 3]
        if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            raise BadRequest("The request path has an invalid percent-encoding.", code="bad_path")
        decoded = chr(int(pair, 16))
        if decoded in _FORBIDDEN:
            raise BadRequest("The request path contains a forbidden character.", code="bad_path")
        out.append(decoded if decoded in _UNRESERVED else "%" + pair.upper())
        i += 3
    return "".join(out)


# Most paths are already canonical: unreserved and harmless sub-delimiters only, no "%", ";",
# "\\", no empty or dot segment. One regex decides that, and saves the segment-by-segment walk.
_PLAIN = re.compile(r"(?:/(?!\.{1,2}(?:/|$))[A-Za-z0-9\-._~!$&'()*+,=:@]+)*/?")


def canonicalise(raw: str) -> Canonical:
    """``raw``: the request target's path as received (latin-1 text of the raw bytes)."""
    if _PLAIN.fullmatch(raw) and raw:
        return Canonical(raw, raw, False, False)
    return walk(raw)


def walk(raw: str) -> Canonical:
    """The canonical form, segment by segment (``canonicalise`` without its fast path)."""
    if not raw.startswith("/"):
        raise BadRequest("The request target must be an absolute path.")
    if any(c in _FORBIDDEN or c > "\x7e" for c in raw):
        raise BadRequest("The request path contains a forbidden character.", code="bad_path")
    segments = raw.split("/")[1:]
    out: list[str] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        segment = _normalise_segment(segment)
        if segment == "" and index != last:
            continue  # "//" collapses; a trailing "/" stays
        if segment == ".":
            if index == last:
                out.append("")
            continue
        if segment == "..":
            if not out or out == [""]:
                raise BadRequest("The request path climbs above the root.")
            out.pop()
            if index == last:
                out.append("")
            continue
        out.append(segment)
    target = "/" + "/".join(out)
    encoded_slash = bool(_ENCODED_SLASH.search(target))
    # Decoded for matching, but an encoded slash must not become a separator, and an encoded "%"
    # must not start a new escape when the path is encoded again (routing.Route.upstream_path).
    path = "".join(part if index % 2 else unquote(part) for index, part in enumerate(_KEPT_ENCODED.split(target)))
    return Canonical(path, target, encoded_slash, ";" in target)
