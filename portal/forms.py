"""Portal forms. Validation that needs the database beyond one field lives in portal.services."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils import timezone

from apigw.logins import ThrottledLoginMixin
from portal.models import ROLE_CHOICES
from proxy.models import ApiKey, ApiProduct, Plan

GRACE_CHOICES = [
    ("0", "None: the old key stops now"),
    ("3600", "1 hour"),
    ("86400", "24 hours"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
]


class _PasswordForm(forms.Form):
    """A password with Django's validators (AUTH_PASSWORD_VALIDATORS), typed twice."""

    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def _user_for_similarity(self) -> User:
        return User(
            username=self.cleaned_data.get("email", ""),
            email=self.cleaned_data.get("email", ""),
            first_name=self.cleaned_data.get("contact_name", ""),
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            try:
                password_validation.validate_password(p1, self._user_for_similarity())
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class SignupForm(_PasswordForm):
    organisation = forms.CharField(
        label="Organisation name", max_length=200, widget=forms.TextInput(attrs={"autocomplete": "organization"})
    )
    contact_name = forms.CharField(
        label="Your name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    email = forms.EmailField(
        label="Work email", max_length=150, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    field_order = ["organisation", "contact_name", "email", "password1", "password2"]


class InvitationAcceptForm(_PasswordForm):
    contact_name = forms.CharField(
        label="Your name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    field_order = ["contact_name", "password1", "password2"]

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        self.email = email
        super().__init__(*args, **kwargs)

    def _user_for_similarity(self) -> User:
        return User(username=self.email, email=self.email, first_name=self.cleaned_data.get("contact_name", ""))


class ResendVerificationForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=150, widget=forms.EmailInput(attrs={"autocomplete": "email"}))


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    """Django's login form, throttled per (email, client IP) and per client IP (apigw/throttle.py)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Enter a correct email address and password. A new account works once its email "
        "address is verified.",
    }

    def __init__(self, request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Email"
        self.fields["username"].widget.attrs["autocomplete"] = "email"

    def clean(self) -> dict[str, Any]:
        self.cleaned_data["username"] = (self.cleaned_data.get("username") or "").strip().lower()
        return super().clean()


class OrganisationForm(forms.Form):
    name = forms.CharField(label="Organisation name", max_length=200)


class OrganisationDeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the organisation's name to confirm", max_length=200)

    def __init__(self, *args: Any, name: str, **kwargs: Any) -> None:
        self.name = name
        super().__init__(*args, **kwargs)

    def clean_confirm(self) -> str:
        value: str = self.cleaned_data["confirm"]
        if value.strip() != self.name:
            raise forms.ValidationError("That is not the organisation's name.")
        return value


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=150)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="developer")


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class SubscribeForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), empty_label=None, widget=forms.RadioSelect)

    def __init__(self, *args: Any, plans: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = plans  # type: ignore[attr-defined]


class KeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses the key, e.g. “production voice skill”.")
    products = forms.ModelMultipleChoiceField(
        queryset=ApiProduct.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to allow every product the organisation subscribes to.",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. The key stops working at the end of this day (UTC).",
    )

    def __init__(self, *args: Any, products: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["products"].queryset = products  # type: ignore[attr-defined]

    def clean_expires_on(self) -> Any:
        day = self.cleaned_data.get("expires_on")
        if day is not None and day < timezone.now().astimezone(UTC).date():
            raise forms.ValidationError("Choose today or a later day.")
        return day

    @property
    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=1) if day else None


class KeyRotateForm(forms.Form):
    grace = forms.TypedChoiceField(
        label="Keep the old key working for",
        choices=GRACE_CHOICES,
        coerce=int,
        initial="86400",
        help_text="Time to deploy the new key everywhere; then the old one stops.",
    )

    @property
    def grace_period(self) -> timedelta:
        return timedelta(seconds=self.cleaned_data["grace"])


class KeyRevokeForm(forms.Form):
    """Empty: the POST (with its CSRF token) is the confirmation."""


def key_choices(keys: Any) -> list[tuple[str, str]]:
    return [("", "All keys")] + [(str(k.pk), f"{k.name} ({k.prefix})") for k in keys]


class UsageFilterForm(forms.Form):
    range = forms.ChoiceField(choices=[], required=False)
    key = forms.ChoiceField(choices=[], required=False)
    product = forms.ChoiceField(choices=[], required=False)

    def __init__(
        self,
        *args: Any,
        keys: list[ApiKey],
        products: list[tuple[str, str]],
        ranges: list[tuple[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["range"].choices = ranges  # type: ignore[attr-defined]
        self.fields["key"].choices = key_choices(keys)  # type: ignore[attr-defined]
        self.fields["product"].choices = [("", "All products"), *products]  # type: ignore[attr-defined]
