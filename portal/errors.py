"""What a portal service refuses, with a message fit to show the user."""

from __future__ import annotations


class PortalError(Exception):
    """A request the portal refuses; ``str(exc)`` is shown to the user."""


class NotAllowed(PortalError):
    """The member's role, or the organisation's status, does not allow this."""
