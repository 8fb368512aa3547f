"""The browser harness proven on a page that people open from their messages: alerts' signed
brief page, opened in a real headless Chromium, shows the account's facts; a forged link shows
the refusal page in words (and its status reaches the browser as the page, not a crash)."""

from __future__ import annotations

from pathlib import Path

from devstack import browser
from tests.integration.alerts.conftest import engine, migrated  # noqa: F401 (fixtures)
from tests.integration.alerts.support import T0, Harness, person
from tests.integration.alerts.test_message_links import (  # noqa: F401 (fixtures)
    acme,
    listening,
    red_change,
    served,
)
from tests.integration.console.browser.conftest import Page


async def test_the_signed_brief_page_renders_in_chromium(
    served: tuple[Harness, str],  # noqa: F811
    page: Page,
    tmp_path: Path,
) -> None:
    harness, base = served
    await harness.feed(person("p_maria", slack="U_MARIA"), acme(), red_change())
    url = harness.config.content.brief_url("acme", "p_maria", T0)
    assert url.startswith(f"{base}/brief/")

    await page.open(url)
    heading = await page.find("h1")
    assert "Acme Corp" in await page.call(lambda: heading.text)
    shown = await page.text()
    for fact in ("$120k", "enterprise", "2027-01-15", "weekly active users 12 → 4"):
        assert fact in shown, fact
    shot = await page.screenshot(tmp_path / "brief.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width = await page.call(page.driver.execute_script, "return window.innerWidth")
    assert width == browser.DESKTOP[0]

    token = url.rsplit("/", 1)[1]
    await page.open(f"{base}/brief/{token[:-2]}{'BB' if token.endswith('AA') else 'AA'}")
    await page.until(lambda d: "This link cannot be used" in d.page_source, what="the refusal page")
