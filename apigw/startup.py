"""Refuse a bad configuration at start-up with one line that names the variable.

Every entry point goes through here: the ASGI application (uvicorn, granian, the image's CMD,
``runplatform``'s server) via apigw/asgi.py, ``manage.py`` (``runserver``, ``runplatform`` and
every other command), and ``python -m apigw.startup`` (the image runs it once before its
workers start). A wrong value raises ``ImproperlyConfigured`` in settings.py, and a broken
invariant is one of the project's system checks (apigw/checks.py); both end the process with
exit status 2 and, on stderr::

    apigw: configuration error: GATEWAY_CONTROL_PREFIXES must not contain '/': ... (apigw.E002)

never a traceback. Only the project's own checks run here (≈1 ms); ``manage.py check`` runs all.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

T = TypeVar("T")
EXIT_STATUS = 2


def refuse(message: str) -> NoReturn:
    print(f"apigw: configuration error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_STATUS)


def configured(build: Callable[[], T]) -> T:
    """``build()`` (which sets Django up), then the project's checks; refuse on any error."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        result = build()
        from apigw.checks import gateway_settings

        errors = [m for m in gateway_settings(None) if m.is_serious()]
    except ImproperlyConfigured as exc:
        refuse(str(exc))
    if errors:
        refuse("; ".join(f"{m.msg} ({m.id})" for m in errors))
    return result


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apigw.settings")
    import django

    configured(django.setup)


if __name__ == "__main__":
    main()
