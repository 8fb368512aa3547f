"""The ingest service's settings: ``INGEST_*`` plus the shared Kafka and API key variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.clock import ClockSettings
from shared.settings import ApiKeySettings, KafkaSettings, ServiceSettings


class IngestSettings(ServiceSettings, KafkaSettings, ApiKeySettings, ClockSettings):
    """Built once in ``__main__`` from the environment and passed down."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", frozen=True)

    port: int = Field(8000, ge=1, le=65535)

    # -- limits ------------------------------------------------------------------------------
    max_body_bytes: int = Field(
        512 * 1024, ge=1024, description="larger request bodies (after gunzip) → 413"
    )
    max_event_bytes: int = Field(
        32 * 1024, ge=256, description="a larger item in a batch is refused on its own"
    )
    max_events_per_request: int = Field(2500, ge=1, description="more items in one request → 413")
    max_future_seconds: float = Field(
        24 * 3600, ge=0, description="an event further than this in the future is refused"
    )

    # -- Kafka -------------------------------------------------------------------------------
    produce_timeout_seconds: float = Field(
        10.0, gt=0, description="Kafka must acknowledge a request's messages within this → 503"
    )
    retry_after_seconds: int = Field(
        5, ge=1, le=59, description="Retry-After of a 503 (Zendesk only retries below 60)"
    )
    large_batch_messages: int = Field(
        64,
        ge=1,
        description="a request's messages for one partition are sent as one pre-built batch "
        "from this many on; fewer are merged with other requests' messages",
    )

    # -- per-key rate limit (per replica) ----------------------------------------------------
    rate_limit_per_second: float = Field(
        50.0, ge=0, description="requests per second per API key; 0 turns the limit off"
    )
    rate_limit_burst: int = Field(100, ge=1, description="requests a key may make at once")

    # -- Segment -----------------------------------------------------------------------------
    segment_account_property: str = Field(
        "account_id",
        min_length=1,
        max_length=128,
        description="property (track/page) naming the account when context.groupId is absent",
    )
    segment_login_events: list[str] = Field(
        default_factory=lambda: ["Signed In", "Logged In", "Login", "User Logged In"],
        description="track event names that become usage events of type login",
    )
    segment_group_updates_accounts: bool = Field(
        False,
        description="a group call whose traits carry a name also publishes an account record",
    )

    # -- Zendesk -----------------------------------------------------------------------------
    zendesk_signing_secret: SecretStr | None = Field(
        None, description="the webhook's signing secret; unset → the endpoint answers 404"
    )
    zendesk_previous_signing_secrets: SecretStr | None = Field(
        None,
        description="comma-separated older signing secrets still accepted while rotating",
    )
    zendesk_organizations: dict[str, str] = Field(
        default_factory=dict,
        description='JSON object: Zendesk organization id → account id, e.g. {"3601": "acme"}',
    )
    zendesk_max_signature_age_seconds: float = Field(
        300.0, gt=0, description="older (or further in the future) signature timestamps → 401"
    )

    def zendesk_secrets(self) -> tuple[bytes, ...]:
        """The secrets a Zendesk signature may be made with: current first; none = disabled."""
        if self.zendesk_signing_secret is None:
            return ()
        previous = self.zendesk_previous_signing_secrets
        older = previous.get_secret_value().split(",") if previous else []
        return tuple(
            secret.strip().encode()
            for secret in [self.zendesk_signing_secret.get_secret_value(), *older]
            if secret.strip()
        )
