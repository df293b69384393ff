"""A headless Debian chromium driven by Playwright, against pytest-django's live server and a real worker.

No browser is ever downloaded: the test uses /usr/bin/chromium (`apt-get install chromium`). Without it
the browser tests are skipped, except where CLIPPRO_REQUIRE_BROWSER=1 (CI), where they fail instead.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The worker, media and model fixtures of the platform's own tests.
from tests.captioning.conftest import fresh_engine, isolated_files, start_worker  # noqa: F401

CHROMIUM = Path(os.environ.get("CLIPPRO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO_ROOT = Path(__file__).resolve().parents[2]


def _unavailable(reason: str) -> None:
    if os.environ.get("CLIPPRO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and CLIPPRO_REQUIRE_BROWSER=1 says the browser tests must run")
    pytest.skip(f"{reason}: install it with `apt-get install -y chromium` to run the browser tests")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots land here (CLIPPRO_TEST_ARTIFACTS, else test-artifacts/ in the checkout)."""
    folder = Path(os.environ.get("CLIPPRO_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are still synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server) -> Iterator:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
