"""schemathesis against /api/admin/v1/schema/: generated requests to every operation never get a
5xx, and every response matches the schema (status, content type, headers, body), for requests
that fit the schema and for requests that break it. (schemathesis' negative_data_rejection check
is not used: django-filter treats an empty filter, ``?status=``, as "no filter", by design.)

Bounded: a few examples per operation and mode, so the whole run takes well under two minutes.
The schema is loaded from the endpoint inside the test (it needs a staff token, so a database);
schemathesis' lazy pytest loader does not run under pytest 9 yet, hence the explicit loop."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adminapi import services as token_services
from tests.adminapi.factories import sample_config, staff
from tests.servers import ROOT

# Hypothesis' caches go to the git-ignored var/, not a .hypothesis/ in the work tree.
set_hypothesis_home_dir(str(ROOT / "var" / "hypothesis"))

# Autocommit per request, as in production: a refused write must not poison the test's
# transaction for the examples after it.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(3600)]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# SCHEMATHESIS_EXAMPLES=200 runs a deeper, randomised search (minutes, not part of the suite).
_DEEP = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "0"))
EXAMPLES = {GenerationMode.POSITIVE: _DEEP or 8, GenerationMode.NEGATIVE: _DEEP or 4}


@pytest.fixture
def auth_headers(db: None) -> dict[str, str]:
    sample_config()
    _, secret = token_services.admin_token_create(user=staff("fuzzer"), name="schemathesis")
    return {"Authorization": f"Bearer {secret}"}


def operations(headers: dict[str, str]) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi(
        "/api/admin/v1/schema/?format=json", get_wsgi_application(), headers=headers
    )
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=str)
def test_the_admin_api_honours_its_schema(auth_headers: dict[str, str], mode: GenerationMode) -> None:
    found = operations(auth_headers)
    assert len(found) > 40
    failures = []
    for operation in found:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            database=None,
            derandomize=not _DEEP,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            case.call_and_validate(headers=auth_headers, checks=CHECKS)

        try:
            exercise()
        except Exception as exc:  # every operation runs; all failures are reported together
            failures.append(f"{operation.label}:\n{exc}")
    assert not failures, "\n\n".join(failures)
