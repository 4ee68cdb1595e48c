"""Browser tests: Playwright (sync API, pytest-playwright) driving Debian's headless Chromium.

- Chromium is /usr/bin/chromium (``make test`` installs it via scripts/system-deps.sh); the tests
  skip, saying why, when it is missing. ``playwright install`` is never needed.
- Playwright's sync API keeps an event loop running in the main thread for the rest of the
  session, so Django would refuse ORM calls from the test (SynchronousOnlyOperation) and
  ``asyncio.run()`` in later tests would fail. Browser tests therefore run last, and
  DJANGO_ALLOW_ASYNC_UNSAFE is set once the first of them starts.
- On failure every open page is saved under var/test-screenshots/.
"""

from __future__ import annotations

import os
import re
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


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_context_args,
        "permissions": ["clipboard-read", "clipboard-write"],
        "viewport": {"width": 1280, "height": 900},
    }


@pytest.fixture(scope="session", autouse=True)
def _allow_sync_orm_beside_playwright() -> None:
    # Not restored: the loop stays for the session, and the session's teardown touches the database.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture
def portal_page(page: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``page``, with a screenshot of every open page of the browser when the test fails. (It
    depends on ``page`` so that it is torn down, and shoots, before the pages close.)"""
    page.set_default_timeout(10_000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:120]
    for c, context in enumerate(page.context.browser.contexts):
        for p, open_page in enumerate(context.pages):
            path = SCREENSHOTS / f"{name}-{c}-{p}.png"
            try:
                open_page.screenshot(path=str(path), full_page=True)
                print(f"screenshot of {open_page.url}: {path}")
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"no screenshot of {open_page.url}: {exc}")


class ConsoleErrors(list[str]):
    """Console errors and uncaught exceptions of a page: CSP violations show up here."""

    def watch(self, page: Any) -> None:
        page.on("console", lambda msg: self.append(f"console: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.append(f"pageerror: {exc}"))
