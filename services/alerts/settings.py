"""The alerts service's settings: one class, built in ``__main__`` and passed down.

Every variable carries the ``ALERTS_`` prefix (``ALERTS_GROUP_WAIT_SECONDS``…), except the
shared infrastructure ones (``KAFKA_*``, ``DATABASE_URL``, ``API_KEYS``, ``LOG_LEVEL``,
``CLOCK_*``). Durations carry their unit in their name; secrets are ``SecretStr``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.alerts import hours
from shared.clock import ClockSettings
from shared.events import MAX_DAILY_ALERT_BUDGET
from shared.mail import SmtpSettings
from shared.settings import ApiKeySettings, DatabaseSettings, KafkaSettings, ServiceSettings

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "rules.toml"


class AlertsSettings(
    ServiceSettings, KafkaSettings, DatabaseSettings, ApiKeySettings, ClockSettings, SmtpSettings
):
    model_config = SettingsConfigDict(env_prefix="ALERTS_", extra="ignore", frozen=True)

    port: int = Field(8002, ge=1, le=65535)
    rules_file: Path = DEFAULT_RULES_FILE
    consumer_group: str | None = Field(
        None, description="Kafka consumer group; default: TOPIC_PREFIX + 'alerts'"
    )
    consumer_max_records: int = Field(500, ge=1)

    # -- timing (clock time) -------------------------------------------------------------------
    group_wait_seconds: float = Field(30.0, ge=0)
    repeat_interval_seconds: float = Field(86_400.0, gt=0)
    escalate_after_seconds: float = Field(4 * 3600.0, gt=0)
    silence_max_seconds: float = Field(30 * 86_400.0, gt=0)
    tick_seconds: float = Field(
        1.0, gt=0, description="real seconds between scheduler passes (group flush, digests)"
    )

    # -- routing -------------------------------------------------------------------------------
    team_slack_channel: str | None = Field(None, description="last resort: a Slack channel id")
    team_email: str | None = Field(None, description="last resort: a team mailbox")
    cs_ops_slack_channel: str | None = Field(
        None, description="CS ops' Slack channel id (model rollout summaries); default: team's"
    )
    cs_ops_email: str | None = Field(None, description="CS ops' mailbox; default: the team's")
    rollout_summary_wait_seconds: float = Field(
        3600.0, ge=0, description="a model rollout is summarised this long after its first change"
    )

    # -- links and content ---------------------------------------------------------------------
    public_url: str = "http://127.0.0.1:8002"
    brief_url_template: str = Field(
        "",
        description="a console's account page, {account_id} filled in; empty: the signed,"
        " expiring, read-only brief page this service serves (/brief/<token>)",
    )
    link_signing_secret: SecretStr | None = Field(
        None, description="HMAC key of one-click links; unset = a random key per process"
    )
    link_previous_signing_secrets: SecretStr | None = Field(
        None, description="comma-separated older keys still accepted (rotation)"
    )
    link_ttl_seconds: float = Field(7 * 86_400.0, gt=0)

    # -- Slack ---------------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api"
    slack_signing_secret: SecretStr | None = Field(
        None,
        description="the Slack app's signing secret: turns on real buttons and the "
        "interactivity endpoint (POST /v1/slack/interactions)",
    )
    slack_timeout_seconds: float = Field(10.0, gt=0)
    slack_channel_interval_seconds: float = Field(
        1.0, ge=0, description="at most one message per this many seconds per Slack channel"
    )

    # -- email (the SMTP server: shared.mail.SmtpSettings) -----------------------------------
    email_from: str = "churnwatch <alerts@churnwatch.invalid>"
    message_id_domain: str = "churnwatch.invalid"

    # -- delivery (real time) ------------------------------------------------------------------
    delivery_workers: int = Field(2, ge=0, description="claiming loops per process (0 = none)")
    delivery_batch_size: int = Field(20, ge=1)
    delivery_poll_seconds: float = Field(
        1.0, gt=0, description="longest wait between claims when no NOTIFY arrives"
    )
    delivery_lease_seconds: float = Field(60.0, gt=0)
    delivery_backoff_initial_seconds: float = Field(2.0, gt=0)
    delivery_backoff_max_seconds: float = Field(600.0, gt=0)
    delivery_give_up_seconds: float = Field(86_400.0, gt=0)

    # -- digest --------------------------------------------------------------------------------
    digest_hour: int = Field(9, ge=0, le=23)
    digest_channel: Literal["email", "slack"] = "email"
    digest_silent_days: float = Field(7.0, gt=0)
    digest_skip_empty: bool = True

    metrics_refresh_seconds: float = Field(5.0, gt=0)

    # -- people's hours and attention: defaults for a person record that leaves them out ----
    working_hours: str | None = Field(
        None, description="e.g. 'mon-fri 09:00-18:00' (local); unset: any time is working time"
    )
    quiet_hours: str | None = Field(None, description="e.g. '22:00-07:00' (local); unset: none")
    alert_channel: Literal["slack", "email", "digest"] = "slack"
    daily_alert_budget: int = Field(
        0, ge=0, le=MAX_DAILY_ALERT_BUDGET, description="new risk alerts a day; 0: no budget"
    )

    # -- retention (rows older than these are purged, in batches) --------------------------
    retain_resolved_alerts_days: float = Field(90.0, gt=0)
    retain_outbox_days: float = Field(30.0, gt=0, description="sent, failed, fallen-back rows")
    retain_used_links_days: float = Field(1.0, ge=0, description="after the link expired")
    retain_history_days: float = Field(
        30.0, ge=1, description="dedup ids, score history, digest items, budget counts"
    )
    purge_every_seconds: float = Field(3600.0, gt=0, description="real seconds between purges")
    purge_batch_size: int = Field(1000, ge=1, le=100_000)
    purge_max_batches: int = Field(10, ge=1, le=1000, description="per table per purge")

    @field_validator("working_hours")
    @classmethod
    def _working_hours(cls, value: str | None) -> str | None:
        return None if value is None else str(hours.parse_working(value))

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        return None if value is None else str(hours.parse_quiet(value))

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> Self:
        longest_send = max(self.slack_timeout_seconds, self.smtp_timeout_seconds)
        if self.delivery_lease_seconds <= longest_send + 1:
            raise ValueError(
                "ALERTS_DELIVERY_LEASE_SECONDS must exceed the longest send timeout "
                f"({longest_send}s) by more than a second, or a slow send could be repeated"
            )
        return self

    @property
    def group(self) -> str:
        return self.consumer_group or f"{self.topic_prefix}alerts"

    def previous_secrets(self) -> list[str]:
        if self.link_previous_signing_secrets is None:
            return []
        raw = self.link_previous_signing_secrets.get_secret_value()
        return [part.strip() for part in raw.split(",") if part.strip()]
