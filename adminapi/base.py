"""What every admin API view shares: authentication, permissions, pagination, error mapping,
and attributing its changes to the caller in the audit log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import HttpRequest, HttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions, filters, status, views, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.response import Response

from adminapi.authentication import AdminTokenAuthentication
from adminapi.permissions import StaffModelPermissions, StaffWithPermissions
from audit.context import acting

# Token first: an unauthenticated call gets 401 with its WWW-Authenticate challenge.
AUTHENTICATION = [AdminTokenAuthentication, SessionAuthentication]


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The change conflicts with other objects."
    default_code = "conflict"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus the database refusals a valid request can still meet: deleting an
    object others depend on, or losing a race on a unique name."""
    if isinstance(exc, ProtectedError | RestrictedError):
        blocking = sorted({f"{o._meta.verbose_name} {o}" for o in list(exc.args[1])[:10]})
        exc = Conflict(f"In use by: {', '.join(blocking)}. Delete or change those first.")
    elif isinstance(exc, IntegrityError):
        exc = Conflict("The change conflicts with existing data (another object has this name?).")
    response = views.exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        # A bare list of messages (SearchFilter's, a serializer's validate()): same shape as the rest.
        response.data = {"non_field_errors": response.data}
    return response


class AuditedMixin:
    """Changes made while handling the request are recorded as the caller's, source "api".
    Bodies are JSON only."""

    audit_source = "api"
    parser_classes: Sequence[type[BaseParser]] = (JSONParser,)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The user is read from the request when a change is recorded: DRF authenticates inside
        # dispatch, after this block starts, and copies the user onto the Django request.
        with acting(self.audit_source, request=request):
            response: HttpResponse = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
            return response

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return exception_handler


class AdminViewSet(AuditedMixin, viewsets.ModelViewSet):
    authentication_classes = AUTHENTICATION
    permission_classes = [StaffModelPermissions]
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend, filters.SearchFilter, filters.OrderingFilter]
    action_permissions: dict[str, list[str]] = {}

    def get_object(self) -> Any:
        value = str(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, ""))
        if "\x00" in value:  # PostgreSQL cannot even compare such a string: it names nothing
            raise exceptions.NotFound()
        return super().get_object()


class AdminReadOnlyViewSet(AuditedMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = AUTHENTICATION
    permission_classes = [StaffModelPermissions]
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend, filters.SearchFilter, filters.OrderingFilter]


class AdminAPIView(AuditedMixin, views.APIView):
    """A view without a model; ``required_permissions`` per HTTP method."""

    authentication_classes = AUTHENTICATION
    permission_classes = [StaffWithPermissions]
    required_permissions: dict[str, list[str]] = {}
