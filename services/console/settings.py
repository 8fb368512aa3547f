"""The console's settings: one class, built in ``__main__`` and passed down.

Every variable carries the ``CONSOLE_`` prefix (``CONSOLE_SCORING_URL``…), except the shared
ones (``LOG_LEVEL``, ``CLOCK_*``). Durations carry their unit in their name; secrets are
``SecretStr``. The SMTP settings mirror alerts' (``ALERTS_SMTP_*``).
"""

from __future__ import annotations

import ipaddress
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.clock import ClockSettings
from shared.mail import SmtpSettings
from shared.settings import ServiceSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConsoleSettings(ServiceSettings, ClockSettings, SmtpSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore", frozen=True)

    port: int = Field(8004, ge=1, le=65535)
    public_url: str = Field("http://127.0.0.1:8004", description="links in sign-in emails")

    # -- the services it reads ---------------------------------------------------------------
    scoring_url: str = "http://127.0.0.1:8001"
    alerts_url: str = "http://127.0.0.1:8002"
    api_key: SecretStr = Field(
        SecretStr(""), description="the console's key on scoring (read) and alerts (read, admin)"
    )
    backend_timeout_seconds: float = Field(5.0, gt=0, le=60)

    # -- sign-in and sessions ----------------------------------------------------------------
    secret_key: SecretStr | None = Field(
        None, description="signs sign-in links, sessions, CSRF; unset = random per process"
    )
    sign_in_ttl_seconds: float = Field(900.0, ge=1, le=3600, description="an emailed link")
    session_ttl_seconds: float = Field(12 * 3600.0, ge=60, le=30 * 86_400)
    sign_in_per_email: int = Field(
        3, ge=1, le=100, description="sign-in links one address may ask for per window"
    )
    sign_in_per_client: int = Field(
        20, ge=1, le=10_000, description="sign-in links one client address may ask for per window"
    )
    sign_in_window_seconds: float = Field(
        900.0, ge=60, le=86_400, description="the window of the two sign-in limits"
    )
    local_dev: bool = Field(
        False, description="local runs over plain HTTP: the session cookie is not Secure"
    )
    admins: str = Field("", description="comma-separated emails who see every account")
    trusted_proxies: str = Field(
        "",
        description="comma-separated CIDRs of authenticating proxies whose X-Forwarded-Email"
        " is trusted (oauth2-proxy); empty: the header is ignored",
    )
    identity_header: str = "X-Forwarded-Email"

    # -- email (the sign-in links; the SMTP server: shared.mail.SmtpSettings) ----------------
    email_from: str = "churnwatch <console@churnwatch.invalid>"

    # -- pages -------------------------------------------------------------------------------
    max_accounts: int = Field(
        2000, ge=1, le=5000, description="accounts one page shows at most (a portfolio)"
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for part in _parts(value):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"not a network (CIDR): {part!r}") from None
        return value

    @model_validator(mode="after")
    def _secure_outside_local(self) -> Self:
        if not self.local_dev and not self.public_url.startswith("https://"):
            # plain HTTP outside local dev would drop the Secure cookie: refuse to start
            raise ValueError("CONSOLE_PUBLIC_URL must be https:// unless CONSOLE_LOCAL_DEV=true")
        return self

    def admin_emails(self) -> frozenset[str]:
        return frozenset(part.lower() for part in _parts(self.admins))

    def proxy_networks(self) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(p, strict=False) for p in _parts(self.trusted_proxies))


def _parts(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]
