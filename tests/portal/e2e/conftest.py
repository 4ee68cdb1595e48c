"""The portal's browser tests (Chromium, ordering and launch flags: tests/browser.py).

On failure every open page is saved under var/test-screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import SCREENSHOTS


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_context_args,
        "permissions": ["clipboard-read", "clipboard-write"],
        "viewport": {"width": 1280, "height": 900},
    }


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
