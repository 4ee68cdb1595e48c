"""docs/operations.md lists every environment variable the code reads, and no other (issue 15,
item 2). The code is searched for the ways it reads the environment: apigw/env.py's helpers
(``env_int("NAME", …)``), ``os.environ``/``os.getenv``, module constants naming a variable
(``ENV = "NAME"``), the image's ``${NAME}``, shell ``${NAME:-default}`` and make's ``NAME ?=``."""

from __future__ import annotations

import re
from pathlib import Path

from tests.servers import ROOT

PYTHON_SOURCES = ["apigw", "proxy", "portal", "adminapi", "audit", "demo", "bench", "manage.py"]
PYTHON_READS = [
    r"""\benv_(?:str|bool|int|float|list|choice)\(\s*["']([A-Z][A-Z0-9_]*)["']""",
    r"""\bos\.environ(?:\.get|\.setdefault|\.pop)?\(\s*["']([A-Z][A-Z0-9_]*)["']""",
    r"""\bos\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]""",
    r"""\bos\.getenv\(\s*["']([A-Z][A-Z0-9_]*)["']""",
    r"""^ENV\s*=\s*["']([A-Z][A-Z0-9_]*)["']""",
]


def python_files() -> list[Path]:
    files: list[Path] = []
    for name in PYTHON_SOURCES:
        path = ROOT / name
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*.py") if "migrations" not in p.parts)
    return files


def read_in_code() -> dict[str, set[str]]:
    """Variable → the files that read it."""
    found: dict[str, set[str]] = {}

    def add(name: str, path: Path) -> None:
        found.setdefault(name, set()).add(str(path.relative_to(ROOT)))

    for path in python_files():
        text = path.read_text()
        for pattern in PYTHON_READS:
            for name in re.findall(pattern, text, flags=re.MULTILINE):
                add(name, path)
    dockerfile = ROOT / "Dockerfile"
    for name in re.findall(r"\$\{([A-Z][A-Z0-9_]*)", dockerfile.read_text()):
        add(name, dockerfile)
    for name in re.findall(r"""environ\.get\(\s*'([A-Z][A-Z0-9_]*)'""", dockerfile.read_text()):
        add(name, dockerfile)
    for script in [*sorted(ROOT.glob("bench/*.sh")), *sorted(ROOT.glob("scripts/*.sh"))]:
        for name in re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", script.read_text()):
            add(name, script)
    makefile = ROOT / "Makefile"
    for name in re.findall(r"^([A-Z][A-Z0-9_]*)\s*\?=", makefile.read_text(), flags=re.MULTILINE):
        add(name, makefile)
    for name in re.findall(r"\$\(([A-Z][A-Z0-9_]*_ARGS)\)", makefile.read_text()):
        add(name, makefile)
    return found


def documented() -> set[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text.split("<!-- env-table:start -->", 1)[1].split("<!-- env-table:end -->", 1)[0]
    names: set[str] = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            first_cell = row.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    return names


def test_the_search_finds_the_ways_the_code_reads_the_environment() -> None:
    found = read_in_code()
    # One of each kind, so a broken pattern cannot make the test below pass vacuously.
    assert "apigw/settings.py" in found["GATEWAY_CONTROL_PREFIXES"]  # env_list( on the next line
    assert "demo/__main__.py" in found["DEMO_PORT"]  # os.environ.get
    assert "apigw/multiproc.py" in found["PROMETHEUS_MULTIPROC_DIR"]  # ENV = "…"
    assert "Dockerfile" in found["GATEWAY_DRAIN_SECONDS"] and "Dockerfile" in found["WORKERS"]
    assert "Makefile" in found["PORT"]


def test_every_variable_read_is_documented() -> None:
    missing = {name: sorted(files) for name, files in read_in_code().items() if name not in documented()}
    assert not missing, f"add these to the table in docs/operations.md: {missing}"


def test_every_documented_variable_is_read() -> None:
    stale = documented() - set(read_in_code())
    assert not stale, f"docs/operations.md lists variables nothing reads: {sorted(stale)}"


def test_the_readme_links_to_the_table_instead_of_keeping_its_own() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/operations.md" in readme
    assert "| variable |" not in readme
