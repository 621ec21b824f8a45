"""Headless Chromium for the browser tests (the viewer here, the server's page in tests/serve).

    from chromium import needs_chromium, start_chromium
    pytestmark = needs_chromium
    driver = start_chromium(profile_dir)     # selenium's Chrome driver; driver.quit() after

Needs the `chromium` and `chromium-driver` Debian packages and the `selenium` Python package
(dev extra); `needs_chromium` skips with a reason when a program is missing, `start_chromium`
when selenium is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs headless Chromium and chromedriver (apt-get install chromium chromium-driver)",
)


def start_chromium(profile: Path, window: str = "1200,900"):
    """A headless Chromium with its own profile, no background network, console logs kept."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (dev extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={window}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
