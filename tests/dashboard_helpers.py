"""The dashboard tests' real browser: headless Chromium driven by Selenium, against the app served on loopback.
Shared by tests/test_dashboard.py and tests/test_dashboard_announcements.py."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
T = TypeVar("T")


def chromium_or_skip() -> None:
    """Skip without Chromium, chromedriver or Selenium; but fail in CI, so that CI cannot pass by skipping."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        message = f"the browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def chrome(profile: Path) -> Iterator[Any]:
    """A headless Chromium with its own profile directory, keeping the browser console's log; quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for argument in (*CHROME_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: Any, username: str, password: str) -> None:
    """Fill in and send the login form the browser is on."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()


async def in_browser(app: web.Application, browse: Callable[[str, Path], T], profile: Path) -> T:
    """Serve `app` on a free loopback port and run browse(base URL, profile) in a thread (Selenium blocks), within a
    minute; the server stops afterwards."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        return await asyncio.wait_for(asyncio.to_thread(browse, f"http://{host}:{port}", profile), 60)
    finally:
        await runner.cleanup()
