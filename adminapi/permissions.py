"""Staff only, then Django model permissions, GET included (a read-only operator role is a
group with the ``view_*`` permissions only: it reads everything and gets 403 on writes)."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

_VIEW = ["%(app_label)s.view_%(model_name)s"]


def is_staff(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class StaffModelPermissions(permissions.DjangoModelPermissions):
    """Per HTTP method on the view's model; a viewset action may name its own permissions in
    ``action_permissions`` (revoking a key is a change, not an addition)."""

    perms_map = {
        "GET": _VIEW,
        "OPTIONS": _VIEW,
        "HEAD": _VIEW,
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: Any) -> bool:
        if not is_staff(request.user):
            return False
        named = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if named is not None:
            return bool(request.user.has_perms(named))
        return super().has_permission(request, view)


class StaffWithPermissions(permissions.BasePermission):
    """For views without a model: ``required_permissions = {"GET": [...], "POST": [...]}``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not is_staff(request.user):
            return False
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        required = getattr(view, "required_permissions", {}).get(method)
        return required is not None and bool(request.user.has_perms(required))


class IsStaff(permissions.BasePermission):
    """The schema and its Swagger UI: any staff user."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_staff(request.user)
