"""The console's Prometheus metrics (``churnwatch_console_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PAGE_SECONDS = Histogram(
    "churnwatch_console_page_seconds",
    "Time to answer a page, by page (route) and status class",
    ["page", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SIGN_INS = Counter(
    "churnwatch_console_sign_ins_total",
    "Sign-in steps by outcome: link_sent, unknown_email, mail_failed, no_smtp, signed_in,"
    " expired, invalid, used, signed_out",
    ["outcome"],
)
SIGN_IN_LIMITED = Counter(
    "churnwatch_console_sign_in_limited_total",
    "Sign-in link requests refused (429 too_many_sign_in_requests), by scope: email, client",
    ["scope"],
)
REFUSALS = Counter(
    "churnwatch_console_refusals_total",
    "Requests refused, by code (not_found covers accounts one may not see)",
    ["code"],
)
ACTIONS = Counter(
    "churnwatch_console_actions_total",
    "Alert actions taken from the console, by action and outcome",
    ["action", "outcome"],
)
BACKEND_SECONDS = Histogram(
    "churnwatch_console_backend_seconds",
    "Time of a call to scoring or alerts, by service",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
BACKEND_ERRORS = Counter(
    "churnwatch_console_backend_errors_total",
    "Calls to scoring or alerts that failed, by service and reason (unreachable, http_<status>)",
    ["service", "reason"],
)
