"""`manage.py apikey revoke` takes the prefix as `apikey list` shows it, with or without the
`gw_` every key starts with (issue 19, item 3: the README's example answered "No such key.")."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from proxy import services

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("form", ["{prefix}", "gw_{prefix}", "{secret}"])
def test_revoke_finds_the_key_by_prefix_with_or_without_gw_or_by_the_whole_key(form: str) -> None:
    partner = services.partner_get_or_create(slug="acme")
    key, secret = services.api_key_create(partner=partner, name="acme prod")
    out = StringIO()
    call_command("apikey", "revoke", form.format(prefix=key.prefix, secret=secret), stdout=out)
    key.refresh_from_db()
    assert key.status == "revoked"
    assert f"Revoked key {key.prefix}" in out.getvalue()


def test_revoke_of_an_unknown_prefix_says_so() -> None:
    with pytest.raises(CommandError, match="No such key"):
        call_command("apikey", "revoke", "gw_nothere1")
