"""Admin API tokens, and the "Test a request" page (proxy/explain.py) in Django admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from adminapi import explain, services
from adminapi.models import AdminToken, RequestTest
from apigw import adminsecret


@admin.register(AdminToken)
class AdminTokenAdmin(admin.ModelAdmin):
    """A token acts with its user's permissions: a staff user sees, creates and deletes only
    their own (else holding ``add_admintoken`` would make anyone a superuser); superusers
    manage everybody's. The secret is shown once, in the response to the POST that created it,
    never through ``messages`` (whose cookie is signed, not encrypted)."""

    list_display = ("prefix", "name", "user", "created", "last_used_at", "expires_at")
    list_filter = ("user",)
    search_fields = ("prefix", "name", "user__username")
    readonly_fields = ("prefix", "last_used_at", "created")

    def get_queryset(self, request: HttpRequest) -> QuerySet[AdminToken]:
        tokens = super().get_queryset(request)
        return tokens if request.user.is_superuser else tokens.filter(user_id=request.user.pk)

    def _owns(self, request: HttpRequest, obj: AdminToken | None) -> bool:
        return obj is None or services.admin_token_may_act_for(by=request.user, user=obj.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) and self._owns(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and self._owns(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and self._owns(request, obj)

    def get_list_filter(self, request: HttpRequest) -> Any:
        return self.list_filter if request.user.is_superuser else ()

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        # Not a choice for a staff user: their tokens are theirs.
        return None if request.user.is_superuser else ("user",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is not None and request.user.is_superuser:
            return (*self.readonly_fields, "user")
        return self.readonly_fields

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user":
            kwargs["queryset"] = db_field.related_model.objects.filter(is_staff=True, is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: AdminToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        owner = obj.user if request.user.is_superuser else request.user
        # Through the service, so the secret is generated, hashed and shown once.
        token, secret = services.admin_token_create(
            user=owner, name=obj.name, expires_at=obj.expires_at, by=request.user
        )
        obj.pk, obj.prefix, obj.hashed, obj.created, obj.user = (
            token.pk,
            token.prefix,
            token.hashed,
            token.created,
            token.user,
        )
        obj._state.adding = False
        adminsecret.remember(request, secret)

    def delete_model(self, request: HttpRequest, obj: AdminToken) -> None:
        services.admin_token_delete(token=obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AdminToken]) -> None:
        for token in queryset:  # get_queryset already narrowed it to the user's own
            services.admin_token_delete(token=token, by=request.user)

    def response_add(self, request: HttpRequest, obj: AdminToken, post_url_continue: str | None = None) -> HttpResponse:
        usage = "Send it as Authorization: Bearer … to /api/admin/v1/. It acts with exactly this user's permissions."
        page = adminsecret.response(self, request, obj, owner=obj.user.get_username(), usage=usage)
        return page or super().response_add(request, obj, post_url_continue)


class RequestTestForm(forms.Form):
    method = forms.CharField(initial="GET", max_length=20)
    url = forms.CharField(
        max_length=8192,
        label="URL",
        widget=forms.TextInput(attrs={"size": 80}),
        help_text="http://api.example.com/api/v1/appliances?x=1, or a path with a Host header.",
    )
    headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        help_text="One per line: Name: value. An API key here is checked, never stored.",
    )
    protocol = forms.ChoiceField(choices=[("http", "HTTP"), ("websocket", "WebSocket")], initial="http")
    client_ip = forms.GenericIPAddressField(initial="127.0.0.1", label="Client IP")
    as_key = forms.CharField(
        required=False,
        max_length=8,
        label="Act as key (prefix)",
        help_text="Instead of a secret: evaluate as this key (e.g. to see its remaining quota).",
    )
    as_partner = forms.SlugField(required=False, label="Act as partner (slug)")

    def api_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        headers: dict[str, str] = {}
        for line in (data.pop("headers") or "").splitlines():
            if line.strip():
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
        data["headers"] = headers
        return data


@admin.register(RequestTest)
class RequestTestAdmin(admin.ModelAdmin):
    """Not a list of objects: the admin's front end to POST /api/admin/v1/explain."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff and request.user.has_perm("proxy.view_route"))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"  # where the admin index links
        return [path("", self.admin_site.admin_view(self.test_view), name=name)]

    def test_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        result = None
        errors: dict[str, Any] = {}
        form = RequestTestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            params = explain.ExplainInputSerializer(data=form.api_data())
            if params.is_valid():
                result = explain.run(params.validated_data)
            else:
                errors = params.errors
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Test a request",
            "form": form,
            "api_errors": errors,
            "result": result,
        }
        return TemplateResponse(request, "admin/adminapi/test_request.html", context)
