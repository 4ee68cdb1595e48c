"""manage.py gatewayconfig export / diff / apply / schema."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditLog
from proxy.models import Route
from tests.adminapi.factories import empty_configuration

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("gatewayconfig", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_export_writes_the_file_and_apply_recreates_the_configuration(configured: None, tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    run("export", str(path))
    stdout, _ = run("export")
    assert path.read_text() == stdout
    empty_configuration()

    out, _ = run("apply", str(path))

    assert "+ route appliances-v1" in out and out.strip().endswith("to delete.")
    assert Route.objects.filter(name="appliances-v1").exists()
    assert run("export")[0] == stdout
    assert run("apply", str(path))[0].strip() == "No changes."


def test_diff_and_dry_run_change_nothing(configured: None, tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(run("export")[0].replace("path: /status", "path: /health"))

    assert '~ route status\n    path: "/status" -> "/health"' in run("diff", str(path))[0]
    assert "Plan: 0 to create, 1 to update, 0 to delete." in run("apply", str(path), "--dry-run")[0]
    assert Route.objects.get(name="status").path == "/status"
    with pytest.raises(SystemExit) as differs:  # not a CommandError: differing is the answer asked for
        run("diff", str(path), "--exit-code")
    assert differs.value.code == 2


def test_an_invalid_file_is_refused_with_file_and_line(db: None, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("upstreams:\n  - name: u\nroutes:\n  - name: r\n    upstream: u\n    path: nope\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="refused"):
        call_command("gatewayconfig", "apply", str(path), stdout=io.StringIO(), stderr=err)
    assert f"{path}:6: routes[0].path: path must start with '/'" in err.getvalue()
    assert not Route.objects.exists()


def test_applies_from_the_command_line_are_audited_as_the_shell_user(db: None, tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("upstreams:\n  - name: u\n")
    run("apply", str(path))
    entry = AuditLog.objects.get(object_repr="u")
    assert entry.source == "config" and entry.action == "create"
    assert entry.actor is None and entry.actor_label.startswith("cli")


def test_schema_prints_the_json_schema() -> None:
    schema = json.loads(run("schema")[0])
    assert schema["title"] == "apigw gateway configuration"
    assert set(schema["properties"]) == {"version", "products", "plans", "upstreams", "routes", "partners"}


@pytest.mark.django_db(transaction=True)  # the command runs in its own process: the data must be committed
def test_diff_exit_code_from_a_shell_is_2_without_an_error_label(configured: None, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import subprocess_database_url

    path = tmp_path / "gateway.yaml"
    path.write_text(run("export")[0].replace("path: /status", "path: /health"))
    env = {**os.environ, "DATABASE_URL": subprocess_database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env["APIGW_TEST_CHILD"] = "1"
    same = subprocess.run(
        [sys.executable, "manage.py", "gatewayconfig", "diff", str(path), "--exit-code"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert same.returncode == 2, same.stderr
    assert "CommandError" not in same.stderr and "Error" not in same.stderr
    assert "1 to update" in same.stdout
