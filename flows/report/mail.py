"""The report as an email (standard library only: EmailMessage, smtplib); no hand-written MIME.

The message is ``multipart/alternative`` (text, then ``multipart/related`` HTML with the charts
attached as inline images referenced by Content-ID).
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path

from flows.core.errors import ConfigError
from flows.core.smtp import send


@dataclass(frozen=True)
class InlineImage:
    name: str  # file name, e.g. quality_scores.png
    png: bytes
    cid: str  # without angle brackets: the HTML refers to it as cid:<cid>


def new_image(name: str, png: bytes) -> InlineImage:
    return InlineImage(name, png, make_msgid(idstring=name.removesuffix(".png"), domain="pgtender")[1:-1])


def parse_recipients(value: str) -> list[str]:
    """``a@x, B <b@y>`` -> ['a@x', 'b@y']; anything that is not an address is a ConfigError."""
    pairs = getaddresses([value])
    out: list[str] = []
    for _, addr in pairs:
        local, at, domain = addr.partition("@")
        if not at or not local or not domain or any(c.isspace() for c in addr):
            raise ConfigError(f"not an email address in {value!r}: {addr!r}")
        out.append(addr)
    if not out:
        raise ConfigError(f"no email address in {value!r}")
    return list(dict.fromkeys(out))


def build_message(
    *,
    subject: str,
    sender: str,
    recipients: list[str],
    text: str,
    html: str,
    images: list[InlineImage],
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients) if recipients else "undisclosed-recipients:;"
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(idstring="report", domain="pgtender")
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None
    for image in images:
        html_part.add_related(
            image.png,
            maintype="image",
            subtype="png",
            cid=f"<{image.cid}>",
            filename=image.name,
            disposition="inline",  # shown in the HTML body, not as an attachment
        )
    return msg


def write_eml(msg: EmailMessage, path: Path) -> Path:
    path.write_bytes(msg.as_bytes(policy=email.policy.SMTP))
    return path


def read_eml(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


__all__ = ["InlineImage", "build_message", "new_image", "parse_recipients", "read_eml", "send", "write_eml"]
