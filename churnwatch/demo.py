"""``make demo``: the whole pipeline on this machine, a simulated portfolio played in minutes.

1. **Set-up** — what ``make up`` does (Kafka, PostgreSQL, topics, migrations, the Slack and
   SMTP sinks), with a database of the demo's own (``churnwatch_demo``, created afresh) and a
   topic prefix of this run's own, so neither an earlier demo nor ``make up``'s data is mixed in.
2. **History** — the portfolio's first ``--history-days`` (42: six weeks, past the baselines'
   warm-up) go in as a team going live would bring its past: ``churnwatch import-history``
   (``churnwatch.importer``) loads their events, accounts and people straight into scoring's
   database, writes each account's daily score
   history and its current score — baselines exist on the first live day, and nothing is
   notified for the past (no onboarding silence is needed). Before the import, ``churnwatch
   fit`` (``churnwatch.demo_fit``) learns a model from the same files with the churn the
   simulator knows by the history's end; the fitted model runs live (and scores the imported
   history) only when it beats the shipped one on the fit's hold-out.
3. **Fast clock** — ingest, scoring and alerts start with the shared scaled clock
   (``CLOCK_SIM_START`` / ``CLOCK_REAL_ANCHOR`` / ``CLOCK_SPEED``, see ``shared/clock.py``) at
   the end of the history: the remaining simulated days pass in ``--drive-minutes`` real
   minutes; sweeps, group waits, repeats, escalations and the 09:00 digests all run in
   simulated time.
4. **Drive** — people and accounts through ingest's API (alerts routes by them), then every
   simulated event of the live days through the channel its product uses (native API, Segment,
   signed Zendesk webhooks), each once the clock reaches its time (``churnwatch.driver``), with
   a progress line.
5. **Settle** — at the end of the run the services are restarted with a clock that runs at
   normal speed from the run's last moment (so what you explore afterwards is the portfolio as
   the run left it, not months of silence later), and the demo waits — with deadlines — until
   scoring and alerts have consumed, scored, published and delivered everything.
6. **Outputs** — gathered from the services and the sinks (``churnwatch.collect``): a terminal
   summary, ``reports/demo.html``, ``reports/demo-summary.txt`` and ``reports/demo-run.json``.

The stack is left running for exploration (``make down`` stops it) unless ``--no-keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any, TextIO

import httpx

from churnwatch import collect, demo_fit, files, report
from churnwatch.client import Client, Endpoints
from churnwatch.driver import Counts, Credentials, Driver, Progress
from churnwatch.simulator import SimulatedDay, Simulation, simulate
from devstack import process
from devstack.stack import CONSOLE, Stack, service_url
from services.scoring.model import DEFAULT_MODEL_FILE
from shared.clock import ScaledClock

DEMO_DATABASE = "churnwatch_demo"
DEMO_START = date(2026, 7, 1)
TEAM_SLACK_CHANNEL = "C0CSTEAM"
TEAM_EMAIL = "customer-success@example.com"


@dataclass(frozen=True)
class Options:
    seed: int = 7
    accounts: int = 300
    days: int = 120
    start: date = DEMO_START
    intensity: float = 1.0
    drive_seconds: float = 240.0  # real seconds in which the simulated days pass
    lead_seconds: float = 20.0  # real seconds between starting the services and day 0
    settle_timeout_seconds: float = 180.0
    history_days: int = 42  # imported as history before the live run (alerts count from then)
    keep: bool = True
    out: Path = Path("reports")
    quiet: bool = False

    @property
    def speed(self) -> float:
        """Simulated seconds per real second (over the live days)."""
        return max(1, self.days - self.history_days) * 86_400 / self.drive_seconds

    @property
    def sim_start(self) -> datetime:
        return datetime.combine(self.start, clock_time(), UTC)

    @property
    def live_start(self) -> datetime:
        """The end of the imported history: where the services' clock starts."""
        return self.sim_start + timedelta(days=self.history_days)


def run_settings(options: Options, prefix: str, anchor: float) -> dict[str, str]:
    """The services' variables while the run plays (fast clock).

    Durations in clock time are simulated; the tunings keep the volume of work sensible when a
    simulated day lasts a couple of real seconds.
    """
    speed = options.speed
    return {
        "CLOCK_SIM_START": options.live_start.isoformat().replace("+00:00", "Z"),
        "CLOCK_REAL_ANCHOR": f"{anchor:.3f}",
        "CLOCK_SPEED": f"{speed:.3f}",
        **_common_settings(prefix),
        # a sweep every 6 simulated hours (every few hundred real milliseconds)
        "SCORING_SWEEP_INTERVAL_SECONDS": str(6 * 3600),
        # an unchanged open alert is repeated weekly, not daily: a CSM reads this for months
        "ALERTS_REPEAT_INTERVAL_SECONDS": str(7 * 86_400),
        # a signature is fresh for a minute of real time
        "INGEST_ZENDESK_MAX_SIGNATURE_AGE_SECONDS": f"{60 * speed:.0f}",
    }


def explore_settings(resume: datetime, prefix: str, anchor: float) -> dict[str, str]:
    """The services' variables after the run: the clock goes on at normal speed from
    ``resume``."""
    return {
        "CLOCK_SIM_START": resume.isoformat().replace("+00:00", "Z"),
        "CLOCK_REAL_ANCHOR": f"{anchor:.3f}",
        "CLOCK_SPEED": "1",
        **_common_settings(prefix),
        "ALERTS_REPEAT_INTERVAL_SECONDS": str(7 * 86_400),
        # what the last events of the run bring is sent at once, not after a group wait
        "ALERTS_GROUP_WAIT_SECONDS": "0",
        # the printed sign-in links stay usable for an hour (the most the console allows)
        "CONSOLE_SIGN_IN_TTL_SECONDS": "3600",
    }


def _common_settings(prefix: str) -> dict[str, str]:
    return {
        "TOPIC_PREFIX": prefix,
        "SCORING_CONSUMER_GROUP": f"{prefix}scoring",
        "ALERTS_CONSUMER_GROUP": f"{prefix}alerts",
        "ALERTS_TEAM_SLACK_CHANNEL": TEAM_SLACK_CHANNEL,
        "ALERTS_TEAM_EMAIL": TEAM_EMAIL,
        "ALERTS_SLACK_CHANNEL_INTERVAL_SECONDS": "0",  # the sink has no rate limit
        "ALERTS_METRICS_REFRESH_SECONDS": "1",
        "INGEST_SHUTDOWN_DRAIN_SECONDS": "0",
        "SCORING_SHUTDOWN_DRAIN_SECONDS": "0",
        "ALERTS_SHUTDOWN_DRAIN_SECONDS": "0",
    }


# ---------------------------------------------------------------------------------------------
# Progress


class Display:
    """One progress line, rewritten in place on a terminal, every few seconds otherwise."""

    def __init__(self, out: TextIO, *, quiet: bool = False) -> None:
        self._out = out
        self._tty = out.isatty()
        self._quiet = quiet
        self._last_plain = 0.0
        self._width = 0
        self.alerts = 0

    def progress(self, p: Progress) -> None:
        if self._quiet:
            return
        c = p.counts
        rejected = f" rejected {c.total_rejected:,}" if c.total_rejected else " rejected 0"
        line = (
            f"  {p.now:%Y-%m-%d %H:%M} · day {min(p.day + 1, p.days):>3}/{p.days} · "
            f"events sent {c.total_sent:,} accepted {c.total_accepted:,}{rejected} · "
            f"alerts {self.alerts:,} · behind {p.lag_seconds / 3600:4.1f} h"
        )
        if self._tty:
            self._width = max(self._width, len(line))
            self._out.write("\r" + line.ljust(self._width))
            self._out.flush()
        elif time.monotonic() - self._last_plain >= 10 or p.day + 1 >= p.days:
            self._last_plain = time.monotonic()
            self._out.write(line + "\n")
            self._out.flush()

    def done(self) -> None:
        if self._tty and self._width and not self._quiet:
            self._out.write("\n")
            self._out.flush()


def say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------
# Settling: wait until scoring and alerts have caught up (conditions with deadlines)


@dataclass(frozen=True)
class Backlog:
    scoring_lag: int
    alerts_lag: int
    rescore_queue: int
    scoring_outbox: int
    alerts_outbox: int

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.scoring_lag,
                self.alerts_lag,
                self.rescore_queue,
                self.scoring_outbox,
                self.alerts_outbox,
            )
        )

    def __str__(self) -> str:
        return (
            f"scoring lag {self.scoring_lag}, rescoring queue {self.rescore_queue}, "
            f"health changes to publish {self.scoring_outbox}, alerts lag {self.alerts_lag}, "
            f"notifications to deliver {self.alerts_outbox}"
        )


async def backlog(stack: Stack, prefix: str) -> Backlog:
    """What is still to be done: consumer lag of both groups, and the work queued in the
    databases (rescoring queue, scoring's outbox, alerts' undelivered notifications)."""
    import asyncpg

    from shared.events import Topics

    topics = Topics(prefix)
    scoring = await group_lag(
        stack,
        f"{prefix}scoring",
        [topics.usage, topics.tickets, topics.surveys, topics.accounts, topics.people],
    )
    alerts = await group_lag(
        stack, f"{prefix}alerts", [topics.health, topics.accounts, topics.people]
    )
    dsn = stack.database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        queue = await conn.fetchval("SELECT count(*) FROM scoring.dirty_accounts")
        outbox = await conn.fetchval("SELECT count(*) FROM scoring.outbox")
        undelivered = await conn.fetchval(
            "SELECT count(*) FROM alerts.outbox WHERE state IN ('pending', 'sending')"
        )
    finally:
        await conn.close()
    return Backlog(scoring, alerts, int(queue), int(outbox), int(undelivered))


async def group_lag(stack: Stack, group: str, topic_names: list[str]) -> int:
    """Messages of ``topic_names`` not yet committed by ``group`` (all of them if it has not
    committed anything yet)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.kafka import client_options
    from shared.settings import KafkaSettings

    options = client_options(KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap_servers))
    admin = AIOKafkaAdminClient(**options)
    consumer = AIOKafkaConsumer(**options)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [
            TopicPartition(topic, p)
            for topic in topic_names
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(partitions)
        lag = 0
        for tp in partitions:
            done = committed.get(tp)
            lag += max(0, ends[tp] - (done.offset if done is not None else 0))
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def settle(
    stack: Stack, prefix: str, timeout_s: float, *, on_wait: Callable[[Backlog], None]
) -> Backlog:
    """Wait until the backlog is empty twice in a row, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    empty_in_a_row = 0
    while True:
        current = await backlog(stack, prefix)
        empty_in_a_row = empty_in_a_row + 1 if current.empty else 0
        if empty_in_a_row >= 2 or time.monotonic() >= deadline:
            return current
        on_wait(current)
        await asyncio.sleep(1.0)


# ---------------------------------------------------------------------------------------------
# The run


class Demo:
    def __init__(self, options: Options, stack: Stack) -> None:
        self.options = options
        self.stack = stack
        self.prefix = f"demo{int(time.time())}."
        self.timings: dict[str, float] = {}
        self.display = Display(sys.stdout, quiet=options.quiet)
        self.live_days: Iterator[SimulatedDay] = iter(())
        self.model_file = Path(os.environ.get("SCORING_MODEL_FILE") or DEFAULT_MODEL_FILE)
        self.fit: demo_fit.Decision | None = None

    def model_settings(self) -> dict[str, str]:
        """The model scoring runs live: the fitted one when the fit chose it."""
        return {"SCORING_MODEL_FILE": str(self.model_file)} if self.fit_chosen else {}

    @property
    def fit_chosen(self) -> bool:
        return self.fit is not None and self.fit.model_file is not None

    # -- set-up -------------------------------------------------------------------------------

    def set_up(self, simulation: Simulation) -> ScaledClock:
        """Infrastructure, a fresh database and topics, the sinks, and the services on the fast
        clock; returns that clock."""
        stack, options = self.stack, self.options
        stack.stop_services()  # they restart with the demo's clock
        process.stop(stack.sinks_dir / "sinks.pid", timeout_s=10)
        shutil.rmtree(stack.sinks_dir, ignore_errors=True)  # this run's recordings only
        stack.home.mkdir(parents=True, exist_ok=True)
        organizations = {str(k): v for k, v in sorted(simulation.zendesk_organizations.items())}
        (stack.home / "zendesk-organizations.json").write_text(json.dumps(organizations) + "\n")
        stack.overrides = _common_settings(self.prefix)
        stack.start_infrastructure()
        self._forget_previous_topics()
        stack.start_sinks()
        self.import_history(simulation)
        anchor = time.time() + options.lead_seconds
        stack.overrides = {**run_settings(options, self.prefix, anchor), **self.model_settings()}
        stack.start_services()
        if time.time() > anchor:
            say(
                f"  (the services took longer than {options.lead_seconds:.0f} s to start: the run "
                "begins late and catches up)"
            )
        return ScaledClock(options.live_start, anchor, options.speed)

    def import_history(self, simulation: Simulation) -> None:
        """The first ``history_days`` through ``churnwatch import-history`` (straight into
        scoring's database, history and current scores written, nothing notified); the
        remaining days are left in ``self.live_days`` for the driver — the first of them also
        carrying every record of the history days (through ingest: alerts routes by them)."""
        from churnwatch import importer
        from services.scoring import model

        options = self.options
        days = iter(simulation)
        history = list(itertools.islice(days, options.history_days))
        directory = self.stack.home / "demo-history"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        events = files.write_events(
            directory / "events.jsonl", (e.event for day in history for e in day.events)
        )
        accounts = {r.account_id: r for day in history for r in day.accounts}
        people = {r.person_id: r for day in history for r in day.people}
        files.write_accounts(directory / "accounts.csv", accounts.values())
        files.write_people(directory / "people.csv", people.values())
        first_live = next(days, None)
        if first_live is not None:
            first_live = replace(
                first_live,
                accounts=tuple(
                    {**accounts, **{r.account_id: r for r in first_live.accounts}}.values()
                ),
                people=tuple({**people, **{r.person_id: r for r in first_live.people}}.values()),
            )
            self.live_days = itertools.chain([first_live], days)
        else:
            self.live_days = iter(())
        if not history:
            return
        self.fit_history(simulation, history)
        say(
            f"  importing the first {options.history_days} days as history "
            f"({events:,} events; churnwatch import-history)"
        )
        started = time.monotonic()
        summary = asyncio.run(
            importer.run(
                self.stack.database_url,
                importer.Options(
                    events=[directory / "events.jsonl"],
                    accounts=[directory / "accounts.csv"],
                    people=[directory / "people.csv"],
                    as_of=options.live_start,
                    model=model.load(self.model_file),
                ),
            )
        )
        self.timings["import_seconds"] = time.monotonic() - started
        say(f"  {summary.line()}")

    def fit_history(self, simulation: Simulation, history: list[SimulatedDay]) -> None:
        """``churnwatch fit`` on the history's files' content; when the fitted model wins on
        the fit's hold-out, it scores the import and runs live (``SCORING_MODEL_FILE``)."""
        from services.scoring import model

        say("  fitting a model on the history (churnwatch fit; the labels: churn known by then)")
        decision = demo_fit.fit_history(
            [e.event for day in history for e in day.events],
            [r for day in history for r in day.accounts],
            simulation.truth,
            model.load(self.model_file),
            last_day=self.options.live_start.date() - timedelta(days=1),
            model_file=self.stack.home / "demo" / "health-fitted.toml",
            report_html=self.options.out / "demo-fit.html",
        )
        self.fit = decision
        if decision.model_file is not None:
            self.model_file = decision.model_file
        self.timings["fit_seconds"] = decision.seconds
        say(f"  {decision.paragraph} ({decision.seconds:.1f} s)")

    def _forget_previous_topics(self) -> None:
        """Delete the topics of the previous demo run (local Kafka only), keep this run's."""
        marker = self.stack.home / "demo-topic-prefix"
        previous = marker.read_text().strip() if marker.exists() else ""
        marker.write_text(self.prefix + "\n")
        if previous and previous != self.prefix and not self.stack.external_kafka:
            with contextlib.suppress(Exception):
                process.run_async(_delete_topics(self.stack.bootstrap_servers, previous))

    def restart_for_exploration(self, clock: ScaledClock) -> datetime:
        """Stop the services and start them again with a normal-speed clock that goes on from
        where the fast one was when they had stopped (nothing was written later than that);
        returns that moment."""
        self.stack.stop_services()
        resume = clock.now()
        self.stack.overrides = {
            **explore_settings(resume, self.prefix, time.time()),
            **self.model_settings(),
        }
        self.stack.start_services()
        return resume

    # -- drive, settle, collect ---------------------------------------------------------------

    async def drive_and_collect(
        self, simulation: Simulation, clock: ScaledClock
    ) -> collect.RunData:
        stack, options = self.stack, self.options
        endpoints = Endpoints(
            api_key=stack.dev_api_key(),
            urls={
                "ingest": service_url("ingest"),
                "scoring": service_url("scoring"),
                "alerts": service_url("alerts"),
            },
        )
        async with httpx.AsyncClient(timeout=30) as http:
            client = Client(http, endpoints)
            driver = Driver(
                simulation,
                client,
                clock,
                Credentials(stack.dev_api_key(), stack.zendesk_signing_secret()),
                on_progress=self.display.progress,
            )
            say(
                f"  day {options.history_days} (the first live day) starts in "
                f"{max(0.0, clock.real_seconds_for(-_ahead(clock))):.0f} s; no onboarding "
                f"silence: the first {options.history_days} days are the imported history"
            )
            poller = asyncio.create_task(self._poll_alerts(client))
            started = time.monotonic()
            try:
                counts = await driver.run(self.live_days)
            finally:
                poller.cancel()
                self.display.done()
            self.timings["drive_seconds"] = time.monotonic() - started
            say(
                f"  drove {simulation.days} days in {self.timings['drive_seconds']:.0f} s; "
                f"at most {driver.max_lag_seconds / 3600:.1f} simulated hours behind"
            )

            say("\nSettling: normal-speed clock from the end of the run, waiting for the backlog")
            started = time.monotonic()
            resume = await asyncio.to_thread(self.restart_for_exploration, clock)
            say(f"  the clock goes on from {resume:%Y-%m-%d %H:%M} UTC at normal speed")
            left = await settle(
                stack,
                self.prefix,
                options.settle_timeout_seconds,
                on_wait=lambda b: None if options.quiet else say(f"  waiting: {b}"),
            )
            self.timings["settle_seconds"] = time.monotonic() - started
            if left.empty:
                say(f"  caught up in {self.timings['settle_seconds']:.0f} s")
            else:
                say(f"  gave up waiting after {options.settle_timeout_seconds:.0f} s: {left}")

            started = time.monotonic()
            run = collect.from_simulation(
                simulation,
                _rules(),
                speed=options.speed,
                onboarding_days=options.history_days,
                bands=_bands(self.model_file),
                latest_accounts=list(driver.accounts.values()),
            )
            run.ingest = _ingest_counts(counts)
            await collect.gather(run, client, stack.sinks_dir)
            self.timings["collect_seconds"] = time.monotonic() - started
            return run

    async def _poll_alerts(self, client: Client) -> None:
        while True:
            with contextlib.suppress(Exception):
                page = await client.get_json("alerts", "/v1/alerts", {"limit": 1})
                if page["alerts"]:
                    self.display.alerts = int(page["alerts"][0]["id"])
            await asyncio.sleep(2.0)


def _ahead(clock: ScaledClock) -> float:
    """Clock seconds from now back to the run's start (negative while it has not begun)."""
    return (clock.now() - clock.sim_start).total_seconds()


def _rules() -> list[tuple[str, str]]:
    from services.alerts import rules
    from services.alerts.settings import DEFAULT_RULES_FILE

    path = Path(os.environ.get("ALERTS_RULES_FILE") or DEFAULT_RULES_FILE)
    return [(r.name, r.motion) for r in rules.load(path).rules]


def _bands(path: Path) -> list[tuple[str, float, float]]:
    from services.scoring import model

    return [(b.name, b.lower, b.upper) for b in model.load(path).default.bands]


def _ingest_counts(counts: Counts) -> dict[str, Any]:
    return {
        "sent": dict(counts.sent),
        "accepted": dict(counts.accepted),
        "ignored": dict(counts.ignored),
        "rejected": dict(counts.rejected),
        "examples": dict(counts.examples),
        "requests": counts.requests,
        "failed_requests": counts.failed_requests,
    }


async def _delete_topics(bootstrap_servers: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.kafka import client_options
    from shared.settings import KafkaSettings

    admin = AIOKafkaAdminClient(
        **client_options(KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers))
    )
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def write_outputs(run: collect.RunData, out: Path) -> dict[str, Path]:
    """``demo.html``, ``demo-summary.txt`` and ``demo-run.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "report": out / "demo.html",
        "summary": out / "demo-summary.txt",
        "data": out / "demo-run.json",
    }
    collect.save(run, paths["data"])
    paths["report"].write_text(report.render_html(run), encoding="utf-8")
    paths["summary"].write_text(report.summary(run), encoding="utf-8")
    return paths


def run(options: Options, stack: Stack | None = None) -> collect.RunData:
    """The whole demo; returns what the pipeline produced (also written to ``options.out``)."""
    began = time.monotonic()
    stack = stack or Stack(database_name=DEMO_DATABASE, fresh_database=True)
    demo = Demo(options, stack)
    simulation = simulate(
        options.seed,
        accounts=options.accounts,
        days=options.days,
        start=options.start,
        intensity=options.intensity,
    )
    say(
        f"churnwatch demo: {options.accounts} accounts, {len(simulation.people)} people, "
        f"{options.days} days from {options.start} (seed {options.seed}); a simulated day "
        f"lasts {options.drive_seconds / options.days:.1f} s"
    )
    say("\nSetting up: Kafka, PostgreSQL, the sinks and the three services (fast clock)")
    clock = demo.set_up(simulation)
    demo.timings["setup_seconds"] = time.monotonic() - began
    say(f"  ready in {demo.timings['setup_seconds']:.0f} s")
    say("\nDriving the simulation through ingest (native, Segment, Zendesk)")
    data = asyncio.run(demo.drive_and_collect(simulation, clock))
    started = time.monotonic()
    data.timings = dict(demo.timings)
    paths = write_outputs(data, options.out)
    data.timings["report_seconds"] = time.monotonic() - started
    data.timings["total_seconds"] = time.monotonic() - began
    collect.save(data, paths["data"])
    summary = report.summary(data) + (f"{demo.fit.paragraph}\n" if demo.fit else "")
    paths["summary"].write_text(summary, encoding="utf-8")
    say("")
    say(summary)
    fitted = demo.fit.report_html if demo.fit else None
    say(
        "Outputs:\n"
        f"  report   {paths['report'].resolve()}\n"
        + (f"  fit      {fitted.resolve()} (and .json)\n" if fitted else "")
        + f"  model    {demo.model_file}\n"
        f"  summary  {paths['summary'].resolve()}\n"
        f"  data     {paths['data'].resolve()}\n"
        f"  Slack    {stack.sinks_dir / 'slack.jsonl'}\n"
        f"  email    {stack.sinks_dir / 'mail'}/*.eml"
    )
    if options.keep:
        say(
            "\nThe stack keeps running for exploration (its clock goes on from the end of the "
            "run at normal speed):\n"
            f"  source {stack.home / 'env'}     # CHURNWATCH_API_KEY, INGEST_URL, ...\n"
            "  churnwatch alerts list; churnwatch health <account>; churnwatch brief <account>\n"
            "  docs/demo.md has more. Stop everything with: make down"
        )
        links = console_links(stack, simulation)
        if links:
            say(
                f"\nThe console: {service_url('console')} — sign in as a demo person (each link "
                "works once, within the hour; the sign-in page sends new ones to the SMTP sink):"
            )
            for name, role, link in links:
                say(f"  {name} ({role})\n    {link}")
    else:
        stack.down()
    say(f"\ndemo finished in {data.timings['total_seconds']:.0f} s")
    return data


def console_links(stack: Stack, simulation: Simulation) -> list[tuple[str, str, str]]:
    """(name, role, sign-in link) of each demo person with an email, when the console runs
    (local mode only: minted with the stack's own console key, never sent anywhere)."""
    if not CONSOLE.exists():
        return []
    from services.console.settings import ConsoleSettings
    from services.console.signin import sign_in_link

    env = stack.service_env()
    settings = ConsoleSettings(
        public_url=env["CONSOLE_PUBLIC_URL"],
        secret_key=env["CONSOLE_SECRET_KEY"],
        local_dev=True,
        sign_in_ttl_seconds=float(env.get("CONSOLE_SIGN_IN_TTL_SECONDS", 900)),
    )
    return [
        (p.name, simulation.roles.get(p.person_id, "person"), sign_in_link(settings, p.email))
        for p in simulation.people
        if p.email and p.active
    ]


def parse(argv: list[str], env: Mapping[str, str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m churnwatch.demo", description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument(
        "--history-days",
        type=int,
        default=None,
        help="the first days imported as history before the live run (default 42: six weeks, "
        "past the baselines' warm-up)",
    )
    parser.add_argument("--intensity", type=float, default=1.0, help="usage volume (0–10]")
    parser.add_argument(
        "--drive-minutes",
        type=float,
        default=4.0,
        help="real minutes in which the simulated days pass (default 4)",
    )
    parser.add_argument("--out", type=Path, default=Path("reports"))
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument("--keep", dest="keep", action="store_true", default=None)
    keep.add_argument("--no-keep", dest="keep", action="store_false", help="stop everything")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    if args.drive_minutes <= 0:
        parser.error("--drive-minutes must be positive")
    keep_env = env.get("DEMO_KEEP", "1").strip().lower() not in ("0", "false", "no")
    return Options(
        history_days=min(42, args.days // 2) if args.history_days is None else args.history_days,
        seed=args.seed,
        accounts=args.accounts,
        days=args.days,
        intensity=args.intensity,
        drive_seconds=args.drive_minutes * 60,
        keep=keep_env if args.keep is None else args.keep,
        out=args.out,
        quiet=args.quiet,
    )


def main(argv: list[str]) -> int:
    options = parse(argv, os.environ)
    try:
        run(options)
    except KeyboardInterrupt:
        say("\ninterrupted; what was started is still running: `make down` stops it")
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
