"""What every admin API view shares: authentication, permissions, pagination, error mapping,
and attributing its changes to the caller in the audit log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError
from django.http import HttpRequest, HttpResponse, JsonResponse, RawPostDataException
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions, filters, status, views, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.response import Response

from adminapi.authentication import AdminTokenAuthentication
from adminapi.permissions import StaffModelPermissions, StaffWithPermissions
from audit.context import acting
from proxy.transactions import Busy, config_lock, is_retryable, is_unavailable, retrying

log = logging.getLogger(__name__)

# Token first: an unauthenticated call gets 401 with its WWW-Authenticate challenge.
AUTHENTICATION = [AdminTokenAuthentication, SessionAuthentication]


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The change conflicts with other objects."
    default_code = "conflict"


def database_error(exc: DatabaseError | Busy) -> tuple[int, str]:
    """What the caller hears when the database, not the request, stopped a call: a race lost
    even after retries is a 409 (try again), a database that did not answer or refused for its
    own reasons (a failing audit insert, a lock timeout) a 503. Never a 500, never raw SQL."""
    if isinstance(exc, Busy) or is_retryable(exc):
        return 409, "The change conflicted with concurrent changes and was not saved; try again."
    if is_unavailable(exc):
        return 503, "The database is unavailable or busy; nothing was changed. Try again shortly."
    log.error("admin API call stopped by the database", exc_info=exc)
    return 503, "The database refused the operation; nothing was changed."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus the database refusals a valid request can still meet: deleting an
    object others depend on, or losing a race on a unique name."""
    if isinstance(exc, ProtectedError | RestrictedError):
        blocking = sorted({f"{o._meta.verbose_name} {o}" for o in list(exc.args[1])[:10]})
        exc = Conflict(f"In use by: {', '.join(blocking)}. Delete or change those first.")
    elif isinstance(exc, IntegrityError):
        exc = Conflict("The change conflicts with existing data (another object has this name?).")
    elif isinstance(exc, DataError):
        exc = exceptions.ValidationError("A value is outside what the database can store.")
    elif isinstance(exc, DatabaseError | Busy):
        request = context.get("request")
        if request is not None and request.method not in SAFE_METHODS:
            return None  # re-raised to AuditedMixin._write, which retries or answers
        status_code, detail = database_error(exc)
        return Response({"detail": detail}, status=status_code, headers={"Retry-After": "1"})
    response = views.exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        # A bare list of messages (SearchFilter's, a serializer's validate()): same shape as the rest.
        response.data = {"non_field_errors": response.data}
    return response


class AuditedMixin:
    """Changes made while handling the request are recorded as the caller's, source "api".
    Bodies are JSON only.

    A write (any unsafe method) is one transaction: the change and its audit entries commit
    together or not at all (an error answer rolls back whatever the view did). It takes the
    configuration lock shared first (``write_lock``; proxy/transactions.py has the lock order),
    and is run again when it loses a deadlock or serialization race."""

    audit_source = "api"
    parser_classes: Sequence[type[BaseParser]] = (JSONParser,)
    write_lock = True

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method in SAFE_METHODS:
            # The user is read from the request when a change is recorded: DRF authenticates
            # inside dispatch, after this block starts, and copies the user onto the Django request.
            with acting(self.audit_source, request=request):
                response: HttpResponse = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
                return response
        return self._write(request, *args, **kwargs)

    def _write(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # A retry parses the body again: keep it (Django hands DRF a fresh stream of request.body
        # each time). Bodies above Django's in-memory limit (only config files can be that big)
        # get one attempt; declarative.apply retries those itself.
        replayable = length.isdigit() and (limit is None or int(length) <= limit)
        if replayable:
            try:
                _ = request.body
            except RawPostDataException:  # something read the stream already: no second attempt
                replayable = False

        def attempt() -> HttpResponse:
            with acting(self.audit_source, request=request), transaction.atomic():
                if self.write_lock:
                    config_lock(shared=True)
                response: HttpResponse = super(AuditedMixin, self).dispatch(request, *args, **kwargs)  # type: ignore[misc]
                if response.status_code >= 400:
                    transaction.set_rollback(True)  # a refused request leaves nothing behind
                return response

        try:
            if not replayable:
                return attempt()
            return retrying(attempt, what=f"{request.method} {request.path}")
        except (DatabaseError, Busy) as exc:
            status_code, detail = database_error(exc)
            return JsonResponse({"detail": detail}, status=status_code, headers={"Retry-After": "1"})

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
