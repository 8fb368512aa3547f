"""The scoring service's settings: ``SCORING_*`` plus the shared infrastructure variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.scoring.model import DEFAULT_MODEL_FILE
from shared.clock import ClockSettings
from shared.settings import ApiKeySettings, DatabaseSettings, KafkaSettings, ServiceSettings


class ScoringSettings(
    ServiceSettings, KafkaSettings, DatabaseSettings, ApiKeySettings, ClockSettings
):
    model_config = SettingsConfigDict(env_prefix="SCORING_", extra="ignore", frozen=True)

    port: int = Field(8001, ge=1, le=65535)

    model_file: Path = Field(DEFAULT_MODEL_FILE, description="the health model (TOML)")
    warm_up_days: int | None = Field(
        None,
        ge=0,
        le=366,
        description="days of history before an account leaves warm-up; default: the model "
        "file's warm_up_days (35); 0 turns warm-up off",
    )
    consumer_group: str | None = Field(
        None, description="Kafka consumer group; default: TOPIC_PREFIX + 'scoring'"
    )
    max_batch_records: int = Field(2000, ge=1, description="records per consumed batch")
    max_event_age_days: int = Field(
        7, ge=1, description="events whose occurred_at is older are refused (dead-lettered)"
    )
    future_tolerance_seconds: float = Field(
        3600.0, ge=0, description="events further ahead of the clock are refused"
    )
    dedup_horizon_days: int = Field(
        8, ge=7, description="event ids are remembered this long (≥ max_event_age_days)"
    )
    score_delta_points: float = Field(
        10.0, gt=0, description="a score move of at least this much publishes a health change"
    )
    sweep_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="clock seconds between two sweeps over the accounts due (a crossing of a "
        "staleness or silence threshold is rescored at most this late)",
    )
    sweep_chunk_accounts: int = Field(2000, ge=1, description="accounts per sweep transaction")
    rescore_chunk_accounts: int = Field(
        200, ge=1, description="queued accounts rescored per transaction"
    )
    rescore_poll_seconds: float = Field(
        1.0, gt=0, description="how often the rescoring queue is checked when nobody wakes it"
    )
    rescore_interval_seconds: float = Field(
        1.0, ge=0, description="at least this long between two rescoring rounds (coalescing)"
    )
    inline_max_accounts: int = Field(
        200,
        ge=0,
        le=10_000,
        description="a consumed batch that touched at most this many accounts rescores them in "
        "its own transaction (0: never; more: they are queued for the rescoring worker)",
    )
    inline_max_lag_seconds: float = Field(
        2.0,
        ge=0,
        description="…but only while the consumer is no further behind than this (the age of "
        "the batch's newest record); further behind, catching up comes first",
    )
    sweep_concurrency: int = Field(2, ge=1, description="sweep chunks rescored at once")
    relay_poll_seconds: float = Field(
        1.0, gt=0, description="how often the outbox is checked when nobody wakes the relay"
    )
    relay_batch_size: int = Field(500, ge=1, description="health changes published per round")
    daily_rows_retention_days: int = Field(
        400, ge=60, description="daily aggregate rows older than this are purged"
    )
    history_retention_days: int = Field(
        730, ge=30, description="score history older than this is purged"
    )

    @model_validator(mode="after")
    def _horizons_agree(self) -> ScoringSettings:
        if self.dedup_horizon_days < self.max_event_age_days:
            raise ValueError(
                "SCORING_DEDUP_HORIZON_DAYS must be at least SCORING_MAX_EVENT_AGE_DAYS: an event "
                "id may be forgotten only once an event that old is refused anyway"
            )
        return self

    @model_validator(mode="after")
    def _enough_connections(self) -> ScoringSettings:
        # consumer + rescorer + relay + the sweep's lock, reader and workers + the API
        needed = 5 + self.sweep_concurrency
        if self.database_pool_size < needed:
            raise ValueError(
                f"DATABASE_POOL_SIZE must be at least {needed} "
                f"(5 + SCORING_SWEEP_CONCURRENCY) for the consumer, rescorer, relay, sweep and API"
            )
        return self

    @property
    def group(self) -> str:
        return self.consumer_group or f"{self.topic_prefix}scoring"
