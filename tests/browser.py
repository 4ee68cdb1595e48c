"""Browser tests: Playwright (sync API, pytest-playwright) driving Debian's headless Chromium.
Loaded for the whole suite (tests/conftest.py), so every ``@pytest.mark.browser`` test, the
portal's and the WebSocket ones, gets the same browser and rules:

- Chromium is /usr/bin/chromium (``make test`` installs it via scripts/system-deps.sh); the tests
  skip, saying why, when it is missing. ``playwright install`` is never needed.
- Playwright's sync API keeps an event loop running in the main thread for the rest of the
  session, so Django would refuse ORM calls from the test (SynchronousOnlyOperation) and
  ``asyncio.run()`` in later tests would fail. Browser tests therefore run last, and
  DJANGO_ALLOW_ASYNC_UNSAFE is set once the first of them starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ROOT

CHROMIUM = os.environ.get("PORTAL_E2E_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "test-screenshots"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Stable sort: everything else keeps its order, browser tests go last (see the docstring).
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
        for item in items:
            if item.get_closest_marker("browser") is not None:
                item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("browser") is not None:
        # Before any fixture of the test, database ones included. Not restored: the loop stays
        # for the session, and the session's teardown touches the database.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
