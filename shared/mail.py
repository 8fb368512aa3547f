"""Sending email through SMTP (aiosmtplib), the same way in every service.

A service's settings inherit :class:`SmtpSettings` (``<PREFIX>_SMTP_HOST`` …); no host means
the service sends no email. What a failure means (retry, give up, log) is the caller's call:
:func:`send` raises what aiosmtplib raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import aiosmtplib
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SendMail = Callable[..., Awaitable[Any]]
Security = Literal["starttls", "tls", "none"]


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    timeout_seconds: float = 20.0


class SmtpSettings(BaseSettings):
    """Where a service sends its email (its own prefix: ``ALERTS_SMTP_HOST``…)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: Security = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(20.0, gt=0)

    def smtp_server(self) -> SmtpServer | None:
        """The server to send through; None when no host is set."""
        if not self.smtp_host:
            return None
        return SmtpServer(
            host=self.smtp_host,
            port=self.smtp_port,
            security=self.smtp_security,
            username=self.smtp_username,
            password=self.smtp_password,
            timeout_seconds=self.smtp_timeout_seconds,
        )


async def send(
    server: SmtpServer, message: EmailMessage, *, send_mail: SendMail = aiosmtplib.send
) -> None:
    """Send ``message`` through ``server`` (TLS or STARTTLS as it says, within its timeout)."""
    await send_mail(
        message,
        hostname=server.host,
        port=server.port,
        use_tls=server.security == "tls",
        start_tls=server.security == "starttls",
        username=server.username,
        password=server.password.get_secret_value() if server.password else None,
        timeout=server.timeout_seconds,
    )
