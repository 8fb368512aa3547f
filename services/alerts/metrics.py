"""Prometheus metrics of the alerts service (names start with ``churnwatch_alerts_``).

Gauges computed from the database (alerts by state, outbox depth and age) are refreshed every
``ALERTS_METRICS_REFRESH_SECONDS`` by each replica; they describe the shared database, so
aggregate them with ``max`` across replicas, not ``sum``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HEALTH_CHANGES = Counter(
    "churnwatch_alerts_health_changes_total",
    "Health changes consumed, by outcome (evaluated, duplicate, late)",
    ["outcome"],
)
ALERT_TRANSITIONS = Counter(
    "churnwatch_alerts_transitions_total",
    "Alerts entering a state, by rule, severity and state",
    ["rule", "severity", "state"],
)
ALERTS = Gauge(
    "churnwatch_alerts_alerts",
    "Open alerts by rule, severity and state (from the database)",
    ["rule", "severity", "state"],
)
NOTIFICATIONS = Counter(
    "churnwatch_alerts_notifications_total",
    "Notifications written to the outbox, by kind (alert, escalation, resolved, digest)",
    ["kind"],
)
UNROUTABLE = Counter(
    "churnwatch_alerts_unroutable_total",
    "Notifications with no destination at all (no owner, no manager, no team channel)",
    ["kind"],
)
DELIVERIES = Counter(
    "churnwatch_alerts_deliveries_total",
    "Delivery attempts by channel and outcome "
    "(sent, retry, rate_limited, fallback, failed, given_up, lease_lost)",
    ["channel", "outcome"],
)
RETRIES = Counter(
    "churnwatch_alerts_delivery_retries_total",
    "Delivery attempts that will be retried, by channel and reason (retry, rate_limited)",
    ["channel", "reason"],
)
LEASES_EXPIRED = Counter(
    "churnwatch_alerts_delivery_leases_expired_total",
    "Outbox rows whose worker vanished mid-send (sent again: at-least-once)",
    ["channel"],
)
SEND_SECONDS = Histogram(
    "churnwatch_alerts_send_seconds",
    "Time of one send to the provider",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OUTBOX_DEPTH = Gauge(
    "churnwatch_alerts_outbox_depth",
    "Outbox rows not yet delivered (pending or sending), by channel",
    ["channel"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "churnwatch_alerts_outbox_oldest_age_seconds",
    "Age of the oldest undelivered outbox row",
)
BRIEF_PAGES = Counter(
    "churnwatch_alerts_brief_pages_total",
    "Signed brief pages asked for, by outcome (served, link_invalid, link_expired, "
    "unknown_account)",
    ["outcome"],
)
SCHEDULER_SECONDS = Histogram(
    "churnwatch_alerts_scheduler_pass_seconds",
    "Time of one scheduler pass (group flushes, repeats, escalations, digests)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEFERRED = Counter(
    "churnwatch_alerts_deferred_total",
    "Messages held until the recipient's working hours or the end of their quiet hours, "
    "by reason (working_hours, quiet_hours)",
    ["reason"],
)
TIME_EVALUATIONS = Histogram(
    "churnwatch_alerts_time_evaluations",
    "Accounts whose rules the scheduler judged as time passed, per tick",
    buckets=(0, 1, 5, 10, 50, 100, 500, 1000, 2000, 5000),
)
TIME_OPENED = Counter(
    "churnwatch_alerts_time_opened_total",
    "Alerts opened by time passing (no new health change), by rule",
    ["rule"],
)
TIME_PASS_SECONDS = Histogram(
    "churnwatch_alerts_time_pass_seconds",
    "Time of one tick's time-driven evaluations (every page of due accounts)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REBASELINED = Counter(
    "churnwatch_alerts_rebaselined_total",
    "Health changes across a model version (judged by no band or score rule), by model version",
    ["model_version"],
)
ROLLOUT_SUMMARIES = Counter(
    "churnwatch_alerts_rollout_summaries_total",
    "Model rollout summaries written to the outbox for CS ops",
)
LIFECYCLE_RESOLVED = Counter(
    "churnwatch_alerts_lifecycle_resolved_total",
    "Open alerts resolved because their account ended (churned), by rule",
    ["rule"],
)
TO_DIGEST = Counter(
    "churnwatch_alerts_to_digest_total",
    "Alerts put in a person's digest instead of a direct message, by reason "
    "(over_budget: past their daily budget of new risk alerts; digest_only: their preference)",
    ["reason"],
)
PURGED = Counter(
    "churnwatch_alerts_purged_rows_total",
    "Rows deleted by the retention purge, by table",
    ["table"],
)
SLACK_INTERACTIONS = Counter(
    "churnwatch_alerts_slack_interactions_total",
    "Slack interactivity requests, by action (ack, snooze_1d, snooze_1w, feedback_*, other, "
    "none) and outcome (done, not_found, refused_forged, refused_stale, invalid)",
    ["action", "outcome"],
)
FEEDBACK = Counter(
    "churnwatch_alerts_feedback_total",
    "Verdicts given on alerts, by rule, verdict (useful, not_useful, known) and source "
    "(slack, email, api)",
    ["rule", "verdict", "source"],
)
RULE_JUDGED = Gauge(
    "churnwatch_alerts_rule_feedback",
    "Alerts judged within the feedback window, by rule and latest verdict (from the database)",
    ["rule", "verdict"],
)
RULE_PRECISION = Gauge(
    "churnwatch_alerts_rule_precision",
    "Share of a rule's judged alerts that were right (useful or already known), within the "
    "feedback window (from the database)",
    ["rule"],
)
