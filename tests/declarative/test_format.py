"""The file format stays in step with the models, and the documented example works."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from proxy import declarative
from proxy.declarative.format import SCHEMA_PATH
from proxy.declarative.kinds import NESTED, TOP_KINDS
from proxy.models import Route

pytestmark = pytest.mark.django_db
DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"
# Kept out of files on purpose: identity of rows, timestamps, and everything secret or runtime.
NOT_IN_FILES = {"id", "created", "updated"}


@pytest.mark.parametrize("kind", [*TOP_KINDS, *NESTED.values()], ids=lambda k: k.name)
def test_every_editable_model_field_is_in_the_format_and_the_schema(kind: declarative.kinds.Kind) -> None:
    editable = {f.name for f in kind.model._meta.concrete_fields if f.editable} - NOT_IN_FILES
    if kind.parent:
        editable -= {kind.parent}
    assert editable == set(kind.fields)
    definition = declarative.schema()["$defs"][kind.name]
    assert set(kind.fields) <= set(definition["properties"])


def test_the_published_schema_file_is_up_to_date() -> None:
    published = json.loads(SCHEMA_PATH.read_text())
    assert published == declarative.schema(), (
        "proxy/config.schema.json is stale: run manage.py gatewayconfig schema > proxy/config.schema.json"
    )


def test_the_schema_is_valid_and_accepts_every_export(configured: None) -> None:
    jsonschema.Draft202012Validator.check_schema(declarative.schema())
    jsonschema.validate(yaml.safe_load(declarative.export_yaml()), declarative.schema())


def test_the_example_in_docs_config_md_applies_and_round_trips(db: None) -> None:
    example = re.search(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    assert example is not None, "docs/config.md has no ```yaml example"
    result = declarative.apply(example.group(1))
    assert result.changes and Route.objects.exists()
    assert declarative.apply(declarative.export_yaml()).changes == []
    assert declarative.apply(example.group(1)).changes == []
