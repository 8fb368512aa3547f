"""A real headless Chromium for the browser tests and the docs' screenshots.

Debian's ``chromium`` driven through Debian's ``chromium-driver`` (the two packages come from the
same source, so their versions always match) with Selenium (a dev dependency). Both packages are
installed with apt-get when missing by ``devstack.debian`` (as PostgreSQL is): that needs root
and apt; anywhere else the error says what to install. ``CHROMIUM`` / ``CHROMEDRIVER`` point at
other binaries.

Each :func:`headless` browser has a profile directory of its own (cookies never leak between
tests) and its driver listens on a free port; nothing is downloaded at run time (Selenium's own
driver manager is never consulted because both paths are given).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devstack import debian

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

PACKAGES = ("chromium", "chromium-driver")
DESKTOP = (1280, 900)
PHONE = (390, 844)


@dataclass(frozen=True)
class Binaries:
    chromium: str
    chromedriver: str


def _found() -> Binaries | None:
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if chromium and driver:
        return Binaries(chromium, driver)
    return None


def ensure_installed() -> Binaries:
    """Chromium and its driver, installing Debian's packages when either is missing."""
    found = _found()
    if found is not None:
        return found
    debian.install(
        PACKAGES,
        missing=(
            "Chromium and chromium-driver not found. Install them (Debian: apt-get install "
            "chromium chromium-driver) or set CHROMIUM and CHROMEDRIVER to their paths."
        ),
        announce="installing Chromium and chromium-driver from Debian's packages",
    )
    found = _found()
    if found is None:
        raise RuntimeError("installed chromium and chromium-driver but found no binaries")
    return found


@contextlib.contextmanager
def headless(
    size: tuple[int, int] = DESKTOP, *, profile: Path | None = None
) -> Iterator[WebDriver]:
    """A headless Chromium window of ``size`` (CSS pixels) with a fresh profile; quit after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binaries = ensure_installed()
    own_profile = profile is None
    profile_dir = profile or Path(tempfile.mkdtemp(prefix="churnwatch-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = binaries.chromium
    for argument in (
        "--headless=new",
        f"--user-data-dir={profile_dir}",
        f"--window-size={size[0]},{size[1]}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    driver = webdriver.Chrome(options=options, service=Service(binaries.chromedriver, port=0))
    try:
        driver.set_page_load_timeout(30)
        # the window cannot be narrower than 500 px: a phone's width is emulated, as DevTools do
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": size[0],
                "height": size[1],
                "deviceScaleFactor": 1,
                "mobile": size[0] < DESKTOP[0] // 2,
            },
        )
        yield driver
    finally:
        driver.quit()
        if own_profile:
            shutil.rmtree(profile_dir, ignore_errors=True)


def screenshot(driver: WebDriver, path: Path, *, full_page: bool = True) -> Path:
    """Save what ``driver`` shows as a PNG at ``path`` (the whole page's height with
    ``full_page``, through the DevTools protocol: no window resize, so the layout's width holds)."""
    import base64

    path.parent.mkdir(parents=True, exist_ok=True)
    if not full_page:
        driver.save_screenshot(str(path))
        return path
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    content = metrics["cssContentSize"]
    width = driver.execute_script("return document.documentElement.clientWidth")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": content["height"], "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def main() -> int:
    """``python -m devstack.browser``: install what is missing, then say which binaries run."""
    try:
        found = ensure_installed()
    except RuntimeError as exc:
        print(f"devstack.browser: {exc}", file=sys.stderr)
        return 2
    for path in (found.chromium, found.chromedriver):
        done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        print(f"{path}: {done.stdout.strip() or done.stderr.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
