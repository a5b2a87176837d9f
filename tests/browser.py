"""Headless Chromium for the browser tests: Debian's `chromium` driven by Selenium through the system `chromedriver`.

A missing browser fails the test with the install command; it never skips."""
from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "outputs" / "browser"          # screenshots (outputs/ is not versioned)
INSTALL = ("headless Chromium is needed for the browser tests: `apt-get install -y chromium chromium-driver` "
           "(Debian) and `pip install selenium`")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1100"]


def find_browser() -> tuple[str, str]:
    "(chromium, chromedriver) paths; fails the test, naming the install command, when either or selenium is missing."
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail(f"selenium is not installed. {INSTALL}")
    if not chromium or not driver:
        pytest.fail(f"chromium={chromium}, chromedriver={driver}: {INSTALL}")
    return chromium, driver


def start_chrome(profile: Path, console_log: bool = False, extra_flags=()):
    """A headless Chrome webdriver with its own profile folder; `console_log=True` keeps the browser console
    (`driver.get_log('browser')`, every level)."""
    chromium, chromedriver = find_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for f in [*FLAGS, *extra_flags, f"--user-data-dir={profile}"]: opts.add_argument(f)
    if console_log: opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=opts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(el) -> np.ndarray:
    "A screenshot of a page element as BGR pixels."
    import cv2
    return cv2.imdecode(np.frombuffer(el.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)


def wait_change(el, before: np.ndarray, timeout: float = 60, what: str = "moving a widget") -> np.ndarray:
    "The element's pixels once they differ from `before`; fails after `timeout` s."
    t = time.time()
    while time.time() - t < timeout:
        time.sleep(0.5)
        now = png(el)
        if now.shape != before.shape or np.abs(now.astype(int) - before).max() > 0: return now
    raise AssertionError(f"the figure did not change after {what}")
