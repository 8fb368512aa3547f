"""Screenshots of every console page for the docs, at desktop and phone width:
``python -m tests.integration.console.browser.screenshots --out docs/images/console``.

The same console the browser tests drive: its own Kafka and PostgreSQL (temporary), ingest,
scoring, alerts and the console as real processes, the browser tests' people and accounts, a
real headless Chromium signed in by the emailed link (Maria, a CSM; Lee, her manager, for the
team page). Writes ``<page>-desktop.png`` and ``<page>-phone.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path

from chaos.stack import Deployment, Endpoints
from devstack import browser, ephemeral
from tests.integration.console.browser.conftest import Page
from tests.integration.console.browser.support import ALERTED, LEAD, MARIA, Console, seed, until
from tests.integration.console.browser.test_console_in_chromium import sign_in

PAGES = (  # (file stem, path, who)
    ("sign-in", "/sign-in", None),
    ("portfolio", "/", MARIA),
    ("account", "/accounts/acme", MARIA),
    ("brief", "/accounts/acme/brief", MARIA),
    ("alerts", "/alerts", MARIA),
    ("team", "/team", LEAD),
)


async def shoot(console: Console, out: Path) -> list[Path]:
    taken: list[Path] = []
    for label, size in (("desktop", browser.DESKTOP), ("phone", browser.PHONE)):
        for who in (None, MARIA, LEAD):
            with browser.headless(size) as driver:
                page = Page(driver)
                if who is not None:
                    await sign_in(page, console, who)
                for stem, path, person in PAGES:
                    if person != who:
                        continue
                    await page.open(console.url + path)
                    await page.find("h1")
                    taken.append(await page.screenshot(out / f"{stem}-{label}.png"))
    return taken


async def run(out: Path, home: Path) -> list[Path]:
    with ephemeral.running(home / "infra", say=print) as infra:
        deployment = Deployment(
            Endpoints(infra.bootstrap_servers, infra.database_url), home / "services"
        )
        await deployment.prepare()
        try:
            await deployment.start()
            await seed(deployment)
            console = Console(deployment, deployment.service("alerts"))
            for account_id in ALERTED:
                await until(
                    lambda: console.open_alert(account_id),  # noqa: B023 (awaited here)
                    timeout_s=90,
                    what=f"an open alert on {account_id}",
                )
            console.service = await deployment.add("console").start()
            return await shoot(console, out)
        finally:
            await deployment.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/images/console"))
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="churnwatch-console-shots-"))
    home.chmod(0o755)  # the postgres system user must reach its cluster directory
    try:
        for path in asyncio.run(run(args.out, home)):
            print(path)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
