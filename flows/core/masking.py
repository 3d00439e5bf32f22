"""Mask secrets in text: passwords in connection URIs and in key=value connection strings."""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host  ->  scheme://user:***@host
_URI_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<secret>[^@\s/]*)@")
# password=secret (libpq key/value form, query strings, SMTP settings)
_KV_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token)\s*=\s*)(?P<secret>'[^']*'|[^\s&;]+)", re.I
)


def mask_secrets(text: str) -> str:
    """Return ``text`` with every recognisable password replaced by ``***``."""
    text = _URI_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    return _KV_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
