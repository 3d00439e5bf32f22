"""Sending mail through the SMTP server of the environment (``PGTENDER_SMTP_*``): the weekly
report and the ``email`` alert channel share it. Standard library only."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from flows.core.errors import ConfigError, InfrastructureError
from flows.core.masking import mask_secrets
from flows.core.policy.settings import Settings


def send(msg: EmailMessage, recipients: list[str], smtp: Settings) -> None:
    """Deliver ``msg`` through the configured SMTP server; any SMTP/network error is infrastructure."""
    if not recipients:
        raise ConfigError("no recipients: set report.recipients in the policy or pass --to")
    where = f"{smtp.smtp_host}:{smtp.smtp_port}"
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if smtp.smtp_tls == "ssl":
            client = smtplib.SMTP_SSL(
                smtp.smtp_host, smtp.smtp_port, timeout=smtp.smtp_timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(smtp.smtp_host, smtp.smtp_port, timeout=smtp.smtp_timeout_seconds)
        with client:
            client.ehlo()
            if smtp.smtp_tls == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if smtp.smtp_username:
                password = smtp.smtp_password.get_secret_value() if smtp.smtp_password else ""
                client.login(smtp.smtp_username, password)
            refused = client.send_message(msg, to_addrs=recipients)
    except (smtplib.SMTPException, OSError) as exc:
        detail = mask_secrets(" ".join(str(exc).split())) or type(exc).__name__
        raise InfrastructureError(f"SMTP {where}: {type(exc).__name__}: {detail}") from exc
    if refused:
        raise InfrastructureError(
            f"SMTP {where} refused {len(refused)} recipient(s): {', '.join(sorted(refused))}"
        )
