"""The console in a real headless Chromium, against real ingest, scoring, alerts and console
processes: a person signs in with the link emailed to the SMTP sink, goes from the portfolio to
an account and acknowledges its alert (alerts' API then says so); another team's account, a
forged CSRF token and an expired or reused sign-in link are refused, each with its code."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from chaos.stack import Deployment, Endpoints
from devstack import browser
from devstack.ephemeral import Infra
from services.console.signin import SESSION_COOKIE, Tokens, link_url
from tests.integration.console.browser.conftest import Page
from tests.integration.console.browser.support import (
    ALERTED,
    MARIA,
    Console,
    seed,
    until,
)


@pytest.fixture(scope="module")
async def console(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    deployment = Deployment(
        Endpoints(infra.bootstrap_servers, infra.database_url), tmp_path_factory.mktemp("console")
    )
    await deployment.prepare()
    try:
        await deployment.start()
        await seed(deployment)
        running = Console(deployment, deployment.service("alerts"))  # for its alerts API
        for account_id in ALERTED:
            await until(
                lambda: running.open_alert(account_id),  # noqa: B023 (awaited in this pass)
                timeout_s=90,
                what=f"an open alert on {account_id}",
            )
        running.service = await deployment.add("console").start()
        yield running
    finally:
        await deployment.stop()


ROWS = "table#portfolio tr[data-account-id]"


async def sign_in(page: Page, console: Console, email: str, start: str = "/") -> None:
    """From a page that needs a session: the sign-in form, the emailed link, Continue."""
    before = len(console.smtp.accepted())
    await page.open(console.url + start)
    field = await page.find("input#email")
    assert "/sign-in" in await page.url()
    await page.call(field.send_keys, email)
    await page.call(page.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click)
    await page.until(lambda d: "Check your email" in d.page_source, what="the 'sent' page")
    link = await console.link_mailed_to(email, before)
    assert link.startswith(f"{console.url}/sign-in/")
    await page.open(link)
    button = await page.find("form button[type=submit]")
    await page.call(button.click)
    await page.until(lambda d: "/sign-in" not in d.current_url, what="signed in")


def refusal_code(driver: WebDriver) -> str | None:
    shown = driver.find_elements(By.CSS_SELECTOR, "code.code")
    return shown[0].text if shown else None


def session_of(driver: WebDriver) -> dict[str, str]:
    return {c["name"]: c["value"] for c in driver.get_cookies() if c["name"] == SESSION_COOKIE}


async def test_sign_in_by_emailed_link_then_portfolio_account_and_acknowledge(
    console: Console, page: Page, tmp_path: Path
) -> None:
    await sign_in(page, console, MARIA)
    assert await page.url() == console.url + "/"

    rows = await page.call(
        lambda: [
            r.get_attribute("data-account-id")
            for r in page.driver.find_elements(
                By.CSS_SELECTOR, "table#portfolio tr[data-account-id]"
            )
        ]
    )
    assert set(rows) == {"acme", "initech", "hooli"}  # Maria's, not Omar's globex

    link = await page.find('table#portfolio tr[data-account-id="acme"] a')
    await page.call(link.click)
    await page.until(lambda d: d.current_url.endswith("/accounts/acme"), what="acme's page")
    await page.until(
        lambda d: "Acme Corp" in d.find_element(By.TAG_NAME, "h1").text, what="acme's heading"
    )

    alert = await console.open_alert("acme")
    assert alert is not None
    box = f'article.alert[data-alert-id="{alert["id"]}"]'
    assert (await page.find(box)).get_attribute("data-state") == "firing"
    ack = await page.find(f"{box} form[action$='/ack'] button")
    await page.call(ack.click)
    await page.until(
        lambda d: any(
            e.get_attribute("data-state") == "acknowledged"
            for e in d.find_elements(By.CSS_SELECTOR, box)
        ),
        what="the alert shown as acknowledged",
    )
    after = await console.alerts_api(f"/v1/alerts/{alert['id']}")
    assert after["state"] == "acknowledged"
    assert after["acknowledged_by"]  # who: the signed-in person, not the console's key
    assert "console" not in str(after["acknowledged_by"]).lower()


async def test_a_csm_is_refused_another_teams_account(console: Console, page: Page) -> None:
    await sign_in(page, console, MARIA)
    await page.open(console.url + "/accounts/globex")
    await page.until(lambda d: refusal_code(d) == "not_found", what="a not_found page")
    assert "Globex" not in await page.text()
    async with httpx.AsyncClient(base_url=console.url, cookies=session_of(page.driver)) as http:
        theirs = await http.get("/accounts/globex")
        unknown = await http.get("/accounts/no-such-account")
        mine = await http.get("/accounts/initech")
    assert (theirs.status_code, theirs.headers["x-error-code"]) == (404, "not_found")
    # the same answer as an account that does not exist: nothing tells them apart
    assert (unknown.status_code, unknown.headers["x-error-code"]) == (404, "not_found")
    assert mine.status_code == 200


async def test_a_post_with_a_forged_csrf_token_is_refused_and_changes_nothing(
    console: Console, page: Page
) -> None:
    await sign_in(page, console, MARIA, "/accounts/initech")
    alert = await console.open_alert("initech")
    assert alert is not None
    form = f'article.alert[data-alert-id="{alert["id"]}"] form[action$="/ack"]'
    await page.find(form)
    await page.call(
        page.driver.execute_script,
        f"document.querySelector('{form} input[name=csrf]').value = 'forged';"
        f"document.querySelector('{form}').submit();",
    )
    await page.until(lambda d: refusal_code(d) == "csrf_failed", what="a csrf_failed page")
    async with httpx.AsyncClient(base_url=console.url, cookies=session_of(page.driver)) as http:
        bare = await http.post(f"/alerts/{alert['id']}/ack", data={"next": "/"})
    assert (bare.status_code, bare.headers["x-error-code"]) == (403, "csrf_failed")
    still = await console.alerts_api(f"/v1/alerts/{alert['id']}")
    assert still["state"] == "firing"


async def test_an_expired_or_reused_sign_in_link_is_refused(console: Console, page: Page) -> None:
    secret = console.deployment.secrets.console_secret_key
    ttl = 900.0
    then = time.time() - ttl - 1

    def minted(at: float) -> str:
        tokens = Tokens(secret, sign_in_ttl=ttl, session_ttl=3600, now=lambda: at)
        return link_url(console.url, tokens.sign_in(MARIA, "/"))

    await page.open(minted(then))
    await page.until(lambda d: refusal_code(d) == "link_expired", what="a link_expired page")
    assert "expired" in (await page.text()).lower()
    assert session_of(page.driver) == {}

    fresh = minted(time.time())
    await page.open(fresh)
    await page.call((await page.find("form button[type=submit]")).click)
    await page.until(lambda d: "/sign-in" not in d.current_url, what="signed in once")
    assert session_of(page.driver)
    await page.call(page.driver.delete_all_cookies)
    await page.open(fresh)  # the same link again
    await page.call((await page.find("form button[type=submit]")).click)
    await page.until(lambda d: refusal_code(d) == "link_used", what="a link_used page")
    assert session_of(page.driver) == {}


UNLABELLED = """
return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.outerHTML);
"""
UNNAMED_BUTTONS = """
return [...document.querySelectorAll('button')]
  .filter(b => !(b.innerText.trim() || b.getAttribute('aria-label')))
  .map(b => b.outerHTML);
"""
OVERFLOW = "return document.documentElement.scrollWidth - window.innerWidth;"


async def test_pages_fit_a_phone_name_every_control_and_work_by_keyboard(console: Console) -> None:
    with browser.headless(browser.PHONE) as driver:
        page = Page(driver)
        await sign_in(page, console, MARIA)
        for path in ("/", "/accounts/hooli", "/accounts/hooli/brief", "/alerts"):
            await page.open(console.url + path)
            await page.find("h1")
            assert await page.call(driver.execute_script, OVERFLOW) <= 0, path  # no side-scroll
            assert await page.call(driver.execute_script, UNLABELLED) == [], path
            assert await page.call(driver.execute_script, UNNAMED_BUTTONS) == [], path

        # by keyboard alone: Tab to the alert's Acknowledge button, then Enter
        alert = await console.open_alert("hooli")
        assert alert is not None
        await page.open(console.url + "/accounts/hooli")
        target = await page.find(
            f'article.alert[data-alert-id="{alert["id"]}"] form[action$="/ack"] button'
        )
        body = await page.find("body")
        for _ in range(80):
            focused = await page.call(lambda: driver.switch_to.active_element)
            if focused == target:
                break
            await page.call(body.send_keys if focused is None else focused.send_keys, Keys.TAB)
        else:
            raise AssertionError("Tab never reached the Acknowledge button")
        await page.call(target.send_keys, Keys.ENTER)
        await page.until(
            lambda d: any(
                e.get_attribute("data-state") == "acknowledged"
                for e in d.find_elements(
                    By.CSS_SELECTOR, f'article.alert[data-alert-id="{alert["id"]}"]'
                )
            ),
            what="acknowledged by keyboard",
        )
    assert (await console.alerts_api(f"/v1/alerts/{alert['id']}"))["state"] == "acknowledged"
