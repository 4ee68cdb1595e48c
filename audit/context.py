"""Who is making the changes of the current request or command, for the audit log.

The actor travels in a context variable, so model signals deep inside service functions can
name it without every call passing it along. It is set

- per request by ``audit.middleware.AuditMiddleware`` (Django admin, portal);
- by the admin API's views (DRF authenticates inside the view, after the middleware ran; the
  user is therefore read from the request lazily, when a change is recorded);
- by ``proxy.declarative`` for config applies and by management commands.

Outside any of these (a shell, a background job) changes are recorded with source "system".
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from apigw.clientip import client_ip


@dataclass
class Actor:
    source: str
    user: Any = None
    label: str = ""
    request: HttpRequest | None = None
    # Entries written in this context, by (content type id, object id): a second change to the
    # same object (a key saved, then its products set) updates the entry instead of adding one.
    written: dict[tuple[int, str], Any] = field(default_factory=dict)

    def resolved_user(self) -> Any:
        if self.user is not None:
            return self.user
        user = getattr(self.request, "user", None) if self.request is not None else None
        return user if user is not None and user.is_authenticated else None

    def resolved_label(self) -> str:
        user = self.resolved_user()
        if user is not None:
            return str(user.get_username())
        return self.label

    def remote_addr(self) -> str | None:
        """The client, by the platform's one rule (behind a trusted balancer: not the balancer)."""
        if self.request is None:
            return None
        address = client_ip(self.request)
        return None if address == "unknown" else address


_current: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


def current() -> Actor | None:
    return _current.get()


@contextlib.contextmanager
def acting(source: str, *, user: Any = None, label: str = "", request: HttpRequest | None = None) -> Iterator[Actor]:
    """Attribute the changes made inside the block to ``user`` (or ``label``) via ``source``.
    Without a user or request, the actor of an enclosing block is kept (an API request that
    applies a config is still that user's)."""
    outer = _current.get()
    if user is None and request is None and outer is not None:
        user, request, label = outer.user, outer.request, label or outer.label
    actor = Actor(source=source, user=user, label=label, request=request)
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def cli_label() -> str:
    """``cli:<OS user>`` for commands run without a Django user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry in some containers
        return "cli"
