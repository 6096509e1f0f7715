"""A headless Chrome for the dashboard tests: Debian's chromium and chromedriver, driven by
Selenium, never a downloaded browser. Missing pieces skip the tests with the reason, unless
KATIB_TEST_REQUIRE_BROWSER=1 makes that a failure."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REQUIRE = os.environ.get("KATIB_TEST_REQUIRE_BROWSER") == "1"
WAIT = 20.0


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'katib-lite[test]')"
    return None


@contextmanager
def chrome() -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        if REQUIRE:
            pytest.fail(f"{missing} (KATIB_TEST_REQUIRE_BROWSER=1 makes this a failure)", pytrace=False)
        pytest.skip(f"{missing}; KATIB_TEST_REQUIRE_BROWSER=1 fails instead")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="katib-ui-chrome-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, predicate: Any, timeout: float = WAIT, what: str = "the page") -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def safe(d: Any) -> Any:
        try:
            return predicate(d)
        except StaleElementReferenceException:  # the page redrew it meanwhile: look again
            return False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(safe)
    except Exception as exc:  # noqa: BLE001 - say what was awaited, with the page's errors
        shot = os.environ.get("KATIB_TEST_SCREENSHOTS")
        if shot:
            driver.save_screenshot(os.path.join(shot, f"timeout-{int(time.time() * 1000)}.png"))
        raise AssertionError(f"timed out waiting for {what}; banner: {banner(driver)!r}; "
                             f"console: {errors(driver)}") from exc


def banner(driver: Any) -> str:
    return str(driver.execute_script(
        "const b = document.getElementById('banner'); return b && !b.hidden ? b.textContent : '';"))


def errors(driver: Any) -> list[str]:
    """The console's errors, without the HTTP errors the pages handle (404 of a gone experiment)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]


def text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def texts(driver: Any, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [str(e.text) for e in driver.find_elements(By.CSS_SELECTOR, css)]
