"""A real headless Chromium per test (Debian's ``chromium`` through ``chromium-driver``, installed
by ``devstack.browser`` when missing): its own profile directory, its driver on a free port.

Selenium's calls block, so tests that serve the app under test in their own event loop call the
browser through :class:`Page`, which runs each call in a thread and waits on conditions with a
deadline (never a sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from devstack import browser

T = TypeVar("T")
DEADLINE_S = 10.0


class Page:
    """The browser, driven from async tests."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def open(self, url: str) -> None:
        await self.call(self.driver.get, url)

    async def until(
        self,
        condition: Callable[[WebDriver], T | None],
        *,
        timeout_s: float = DEADLINE_S,
        what: str = "",
    ) -> T:
        """``condition``'s first truthy answer, polled until the deadline (then it fails)."""
        # a page that navigates meanwhile detaches the elements found before: ask again
        wait = WebDriverWait(
            self.driver,
            timeout_s,
            poll_frequency=0.05,
            ignored_exceptions=(NoSuchElementException, WebDriverException),
        )
        found: T | None = await self.call(
            wait.until, condition, what or getattr(condition, "__name__", "")
        )
        assert found is not None
        return found

    async def find(self, css: str, *, timeout_s: float = DEADLINE_S) -> WebElement:
        return await self.until(
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, css)), None),
            timeout_s=timeout_s,
            what=f"an element matching {css!r}",
        )

    async def text(self) -> str:
        return await self.call(lambda: self.driver.find_element(By.TAG_NAME, "body").text)

    async def url(self) -> str:
        return await self.call(lambda: self.driver.current_url)

    async def screenshot(self, path: Path) -> Path:
        return await self.call(browser.screenshot, self.driver, path)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[WebDriver]:
    """A headless Chromium at desktop size with a fresh profile under the test's tmp_path."""
    with browser.headless(browser.DESKTOP, profile=tmp_path / "chromium-profile") as driver:
        yield driver


@pytest.fixture
def page(chromium: WebDriver) -> Page:
    return Page(chromium)
