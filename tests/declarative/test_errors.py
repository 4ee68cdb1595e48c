"""Invalid files are refused whole, with the line of each problem, and change nothing."""

from __future__ import annotations

import pytest

from audit.models import AuditLog
from proxy import declarative
from proxy.models import ApiProduct, Route, Upstream
from tests import factories

pytestmark = pytest.mark.django_db


def refused(text: str, **options: bool) -> list[tuple[int | None, str, str]]:
    with pytest.raises(declarative.ConfigInvalid) as caught:
        declarative.apply(text, **options)
    return [(e.line, e.path, e.message) for e in caught.value.errors]


def test_yaml_syntax_errors_name_their_line() -> None:
    errors = refused("version: 1\nroutes:\n  - name: a\n    path: [unclosed\n")
    assert len(errors) == 1
    line, _, message = errors[0]
    assert line in (4, 5) and "not valid YAML" in message


def test_an_unknown_key_is_reported_at_its_own_line() -> None:
    errors = refused("upstreams:\n  - name: u\n    descripton: typo\n")
    assert errors == [(3, "upstreams[0].descripton", errors[0][2])]
    assert "unknown key 'descripton'" in errors[0][2]


def test_wrong_types_and_missing_fields_are_all_reported() -> None:
    text = """version: 1
plans:
  - slug: gold
    name: Gold
    per_minute: lots
routes:
  - name: r
    path: /x
upstreams:
  - name: Not A Slug
"""
    errors = refused(text)
    by_line = {line: (path, message) for line, path, message in errors}
    assert by_line[5][0] == "plans[0].per_minute" and "not of type" in by_line[5][1]
    assert by_line[7][0] == "routes[0]" and "'upstream' is a required property" in by_line[7][1]
    assert by_line[10][0] == "upstreams[0].name" and "does not match" in by_line[10][1]


def test_model_validation_errors_point_at_the_field() -> None:
    text = """upstreams:
  - name: u
    targets:
      - url: gopher://old
routes:
  - name: r
    upstream: u
    path_type: regex
    path: ^/(unclosed
"""
    errors = refused(text)
    assert (4, "upstreams[0].targets[0].url") in {(line, path) for line, path, _ in errors}
    path_errors = [m for line, path, m in errors if path == "routes[0].path"]
    assert path_errors and "does not compile" in path_errors[0]
    assert [line for line, path, _ in errors if path == "routes[0].path"] == [9]


def test_references_to_unknown_objects_are_refused() -> None:
    errors = refused("routes:\n  - name: r\n    upstream: nowhere\n    product: nothing\n")
    assert (3, "routes[0].upstream", "no upstream named 'nowhere'") in errors


def test_duplicate_names_and_duplicate_keys_are_refused() -> None:
    assert refused("upstreams:\n  - name: u\n  - name: u\n") == [
        (3, "upstreams[1].name", "another upstream above is also named 'u'")
    ]
    assert refused("plans:\n  - slug: a\n    name: A\n    name: B\n") == [
        (4, "plans[0]", "the key 'name' appears twice")
    ]


def test_anchors_and_nul_characters_are_refused() -> None:
    assert "anchors and aliases" in refused("upstreams:\n  - &u {name: u}\n  - *u\n")[0][2]
    assert "NUL" in refused('upstreams:\n  - name: u\n    description: "a\\0b"\n')[0][2]


def test_a_refused_file_changes_nothing_even_when_most_of_it_is_fine() -> None:
    factories.upstream(name="kept", description="before")
    audit_entries = AuditLog.objects.count()
    text = """products:
  - slug: fine
    name: Fine
upstreams:
  - name: kept
    description: after
  - name: new
routes:
  - name: bad
    upstream: new
    path: no-slash
"""
    errors = refused(text)
    assert [(line, path) for line, path, _ in errors] == [(11, "routes[0].path")]
    assert not ApiProduct.objects.exists()
    assert not Upstream.objects.filter(name="new").exists()
    assert Upstream.objects.get(name="kept").description == "before"
    assert not Route.objects.exists()
    assert AuditLog.objects.count() == audit_entries


def test_an_empty_file_is_valid_and_changes_nothing() -> None:
    assert declarative.apply("").changes == []
    assert declarative.apply("# nothing yet\n", prune=True).changes == []


def test_the_top_level_must_be_a_mapping() -> None:
    assert "is not of type 'object'" in refused("- a\n- b\n")[0][2]


def test_one_run_reports_every_mistake_of_a_file() -> None:
    """A route with a typo'd key, an unknown upstream and a path that does not compile, beside a
    plan with a wrong type and an upstream with a bad target: all in one refusal, not in rounds."""
    text = """plans:
  - slug: gold
    name: Gold
    per_minute: lots
upstreams:
  - name: u
    connect_timeout: .nan
    targets:
      - url: gopher://old
routes:
  - name: r
    upstream: nowhere
    path_type: regex
    path: ^/(unclosed
    methds: [GET]
  - name: ok
    upstream: u
    path: /ok
    hosts: [1]
"""
    errors = refused(text)
    paths = {path for _, path, _ in errors}
    assert {
        "plans[0].per_minute",
        "upstreams[0].connect_timeout",
        "upstreams[0].targets[0].url",
        "routes[0].upstream",
        "routes[0].path",
        "routes[0].methds",
        "routes[1].hosts[0]",
    } <= paths, errors
    assert [line for line, _, _ in errors] == sorted(line for line, _, _ in errors)  # in file order
    assert not Upstream.objects.exists() and not Route.objects.exists()


def test_a_reference_to_an_object_the_schema_refused_is_not_reported_twice() -> None:
    errors = refused("upstreams:\n  - name: u\n    algorithm: 7\nroutes:\n  - name: r\n    upstream: u\n    path: /x\n")
    assert [path for _, path, _ in errors] == ["upstreams[0].algorithm"], errors
