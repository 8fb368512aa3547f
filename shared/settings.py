"""Settings conventions shared by the services.

Every service has one settings class in ``services/<name>/settings.py`` that inherits the
mix-ins it needs from here, is built once in its ``__main__`` and passed down — never read at
import time. Configuration comes only from environment variables:

- infrastructure and cross-service settings have fixed names (``KAFKA_BOOTSTRAP_SERVERS``,
  ``DATABASE_URL``, ``TOPIC_PREFIX``, ``API_KEYS``, ``LOG_LEVEL``…);
- a service's own settings carry its prefix (``INGEST_PORT``, ``SCORING_SWEEP_INTERVAL_SECONDS``…).

Durations carry their unit in their name. Secrets are ``SecretStr``: never logged or printed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_DATABASE_URL = "postgresql+asyncpg://churnwatch@127.0.0.1:15432/churnwatch"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class ServiceSettings(BaseSettings):
    """What every service has: where it listens and how it logs."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env("LOG_LEVEL")
    )
    shutdown_drain_seconds: float = Field(
        2.0, ge=0, description="after SIGTERM: answer 503 this long before closing the port"
    )
    shutdown_grace_seconds: float = Field(
        20.0, gt=0, description="then: wait this long at most for requests in flight"
    )


class KafkaSettings(BaseSettings):
    """How to reach Kafka. Security settings are for real clusters (Strimzi, managed)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS")
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=_env("KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validation_alias=_env("KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(None, validation_alias=_env("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(
        None, validation_alias=_env("KAFKA_SASL_PASSWORD")
    )
    kafka_ssl_cafile: str | None = Field(None, validation_alias=_env("KAFKA_SSL_CAFILE"))
    topic_prefix: str = Field(
        "churnwatch.", validation_alias=_env("TOPIC_PREFIX"), pattern=r"^[A-Za-z0-9._-]*$"
    )
    create_topics: bool = Field(
        False,
        validation_alias=_env("KAFKA_CREATE_TOPICS"),
        description="Create missing topics at start-up (local runs; in Kubernetes Strimzi does).",
    )


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: SecretStr = Field(
        SecretStr(LOCAL_DATABASE_URL), validation_alias=_env("DATABASE_URL")
    )
    database_pool_size: int = Field(10, ge=1, validation_alias=_env("DATABASE_POOL_SIZE"))


class ApiKeySettings(BaseSettings):
    """The callers' API keys: a JSON list of ``{"name", "sha256", "scopes"}`` (shared.auth)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    api_keys: SecretStr = Field(SecretStr("[]"), validation_alias=_env("API_KEYS"))
