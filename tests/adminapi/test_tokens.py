"""Admin API tokens act for their owner only.

steve is staff with nothing but ``add_admintoken``; root is a superuser; alice an operator.
The escalation from issue 14: steve minted a token *for root* in Django admin and used it on
/audit/ and config/apply. Now he can only ever mint his own."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from adminapi import services
from adminapi.models import AdminToken

pytestmark = pytest.mark.django_db
ADD = "/admin/adminapi/admintoken/add/"


@pytest.fixture
def root(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw-root")


@pytest.fixture
def steve(db: None) -> User:
    user = User.objects.create_user("steve", "steve@example.com", "pw-steve", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_admintoken"))
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_staff_user_cannot_mint_a_token_for_a_superuser(steve: User, root: User) -> None:
    response = logged_in(steve).post(ADD, {"name": "escalate", "user": root.pk})
    assert response.status_code == 200
    token = AdminToken.objects.get(name="escalate")
    assert token.user == steve  # the user field is not his to choose
    secret = response.context["secret"]
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/admin/v1/audit/").status_code == 403
    assert api.post("/api/admin/v1/config/apply", {"config": ""}, format="json").status_code == 403


def test_the_add_form_offers_no_user_choice_to_a_staff_user(steve: User, root: User) -> None:
    page = logged_in(steve).get(ADD).content.decode()
    assert 'name="user"' not in page
    assert 'name="user"' in logged_in(root).get(ADD).content.decode()


def test_a_superuser_may_create_a_token_for_another_staff_user(root: User, steve: User) -> None:
    response = logged_in(root).post(ADD, {"name": "for-steve", "user": steve.pk})
    assert response.status_code == 200
    assert AdminToken.objects.get(name="for-steve").user == steve


def test_the_secret_is_shown_once_in_the_page_and_never_put_in_a_cookie(steve: User) -> None:
    client = logged_in(steve)
    response = client.post(ADD, {"name": "mine"})
    secret = response.context["secret"]
    assert secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert "messages" not in response.cookies
    assert all(secret not in morsel.value for morsel in client.cookies.values())


def test_staff_users_see_and_delete_only_their_own_tokens(steve: User, root: User) -> None:
    steve.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_admintoken", "change_admintoken", "delete_admintoken"])
    )
    roots, _ = services.admin_token_create(user=root, name="roots")
    mine, _ = services.admin_token_create(user=steve, name="mine")
    client = logged_in(steve)
    listing = client.get("/admin/adminapi/admintoken/").content.decode()
    assert mine.prefix in listing and roots.prefix not in listing
    # Another's token is not found for him, not even to look at; the bulk action skips it too.
    assert client.get(f"/admin/adminapi/admintoken/{roots.pk}/change/").status_code == 302
    assert client.post(f"/admin/adminapi/admintoken/{roots.pk}/delete/", {"post": "yes"}).status_code == 302
    client.post(
        "/admin/adminapi/admintoken/",
        {"action": "delete_selected", "_selected_action": [roots.pk, mine.pk], "post": "yes"},
    )
    assert list(AdminToken.objects.values_list("name", flat=True)) == ["roots"]


def test_the_service_refuses_acting_for_someone_else(steve: User, root: User) -> None:
    with pytest.raises(PermissionDenied):
        services.admin_token_create(user=root, name="x", by=steve)
    token, _ = services.admin_token_create(user=root, name="x", by=root)
    with pytest.raises(PermissionDenied):
        services.admin_token_delete(token=token, by=steve)
    services.admin_token_delete(token=token, by=root)
    assert not AdminToken.objects.exists()


def test_the_cli_refuses_a_superuser_token_unless_asked(root: User) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--superuser"):
        call_command("admintoken", "create", "--user", "root", "--name", "x")
    call_command("admintoken", "create", "--user", "root", "--name", "x", "--superuser")
    assert AdminToken.objects.filter(user=root).count() == 1
