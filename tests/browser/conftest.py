"""Playwright drives Debian's Chromium (never `playwright install`) against pytest-django's live server."""

import os
import shutil

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM then needs this.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium).")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def csp_watch(page) -> list[str]:
    """Every Content-Security-Policy violation the page reports: a test that caused one fails at its end."""
    blocked: list[str] = []
    page.on("console", lambda m: "Content Security Policy" in m.text and blocked.append(m.text))
    return blocked


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    blocked = csp_watch(page)
    yield page
    context.close()
    assert blocked == [], "the Content-Security-Policy blocked something"


@pytest.fixture(autouse=True)
def builtin_roles(transactional_db):
    """Live-server tests run in flushed databases; put back the roles the migration seeds."""
    from tests.factories import builtin_roles_seed

    builtin_roles_seed()
