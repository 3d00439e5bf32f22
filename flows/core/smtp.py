"""Sending mail through the SMTP server of the environment (``PGTENDER_SMTP_*``): the weekly
report and the ``email`` alert channel share it. Standard library only."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator
from email.message import EmailMessage

from flows.core.errors import ConfigError, InfrastructureError
from flows.core.masking import mask_secrets
from flows.core.policy.settings import Settings


@contextlib.contextmanager
def _deadline(client: smtplib.SMTP, seconds: float | None) -> Iterator[None]:
    """Past ``seconds``, the connection is shut: a server that answers a byte at a time cannot hold
    the sender longer (each socket read has its own timeout, the whole exchange has none)."""
    if seconds is None:
        yield
        return

    def cut() -> None:
        sock = client.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def send(
    msg: EmailMessage, recipients: list[str], smtp: Settings, *, deadline_seconds: float | None = None
) -> None:
    """Deliver ``msg`` through the configured SMTP server; any SMTP/network error is infrastructure.
    ``deadline_seconds``: the whole exchange (connect to the last reply) ends by then."""
    if not recipients:
        raise ConfigError("no recipients: set report.recipients in the policy or pass --to")
    where = f"{smtp.smtp_host}:{smtp.smtp_port}"
    context = ssl.create_default_context()
    timeout = smtp.smtp_timeout_seconds
    if deadline_seconds is not None:
        timeout = min(timeout, deadline_seconds)
    try:
        client: smtplib.SMTP
        if smtp.smtp_tls == "ssl":
            client = smtplib.SMTP_SSL(timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(timeout=timeout)
        with _deadline(client, deadline_seconds), client:
            client.connect(smtp.smtp_host, smtp.smtp_port)
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
