"""Mask secrets in text: whatever the user gave as a password, in every form it can take.

Two layers, because a password must not survive even when a connection string is malformed:

- by value: every password pgtender was given (the database URL as written, decoded and as libpq
  reads it; key=value ``password=``; ``PGPASSWORD``; the SMTP password) is replaced wherever it
  appears, without trusting any URL parser to find it;
- by shape: ``scheme://user:<anything up to the last @>@``, ``password=…``, ``PGPASSWORD=…`` in
  text from elsewhere (a URL in a libpq message, a log argument).

Where a database lives is not shown either: targets are named, never their host, port or database.
libpq and psycopg put those in their messages (``connection to server at "10.0.0.5", port 5432
failed``, ``database "sales" does not exist``): ``scrub_locations`` rewrites those shapes, and every
masked text goes through it.

``malformed_url`` says when libpq would read a URL differently from what its author meant (an
unencoded ``@`` or ``/`` in the password turns part of it into a host, port or database name, which
then appears in every error message): such a URL is refused before anything connects.
"""

from __future__ import annotations

import os
import re
import threading
from functools import lru_cache
from urllib.parse import unquote

import psycopg
from psycopg import conninfo

MASK = "***"
# Shorter secrets are masked where they stand as a password (URL, key=value), not as any substring:
# replacing every "a" or "12" in a message would leave nothing readable.
MIN_VALUE_LENGTH = 4
# Environment variables whose values are secrets (and a URL whose password is one).
SECRET_ENV = ("PGPASSWORD", "PGTENDER_SMTP_PASSWORD")
URL_ENV = ("PGTENDER_DATABASE_URL",)

_SCHEME = re.compile(r"^\s*[a-zA-Z][a-zA-Z0-9+.-]*://")
# scheme://user:<secret>@host — greedy: a password may hold '@', '/', ':', '#', '%' unencoded.
_URI_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<secret>\S*)@")
# password=secret, PGPASSWORD=secret (libpq key/value form, query strings, environment dumps)
_KV_PASSWORD = re.compile(
    r"(?P<head>(?:\b|(?<=PG))(?:password|passwd|pwd|secret|token)\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'?|\S+)",
    re.I,
)
_QUOTED = re.compile(r'"[^"]*"')
# Where a server lives, in the shapes libpq (14+ and older) and psycopg write it.
_LOCATIONS = (
    (
        re.compile(r'connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed'),
        "connection to the server failed",
    ),
    (re.compile(r'connection to server on socket "[^"]*" failed'), "connection to the socket failed"),
    (re.compile(r'could not translate host name "[^"]*" to address'), "could not translate the host name"),
    (re.compile(r"failed to resolve host '[^']*'"), "failed to resolve the host name"),
    (re.compile(r"host: '[^']*', port: '[^']*'(?:, hostaddr: '[^']*')?"), "one of the addresses"),
    (re.compile(r'on host "[^"]*"(?: \([^)]*\))?'), "on that host"),
    (re.compile(r'on Unix domain socket "[^"]*"'), "on that socket"),
    (re.compile(r"TCP/IP connections on port \d+"), "TCP/IP connections on that port"),
    (re.compile(r'\bdatabase "[^"]*"'), "the database"),
)

_registered: set[str] = set()
_registered_lock = threading.Lock()


def _unquote_kv(value: str) -> str:
    if value.startswith("'"):
        value = value[1:-1] if value.endswith("'") and len(value) > 1 else value[1:]
        return re.sub(r"\\(.)", r"\1", value)
    return value


def password_candidates(dsn: str) -> set[str]:
    """Every string that may be the password in ``dsn`` as the user wrote it: raw, percent-decoded
    and as libpq reads it. A malformed URL yields what its author meant, not libpq's misreading."""
    out: set[str] = set()
    text = dsn.strip()
    if _SCHEME.match(text):
        rest = text.split("://", 1)[1]
        # The author's userinfo ends at the last '@' (a password may hold any character); libpq's
        # at the first '@' or '/'. Take both readings, and a query-string password.
        for end in {rest.rfind("@"), rest.find("@")} - {-1}:
            userinfo = rest[:end]
            if ":" in userinfo:
                raw = userinfo.split(":", 1)[1]
                out |= {raw, unquote(raw)}
        for match in re.finditer(r"[?&]password=([^&]*)", rest):
            out |= {match.group(1), unquote(match.group(1))}
    else:
        for match in _KV_PASSWORD.finditer(text):
            if match.group("head").strip().lower().startswith("password"):
                out.add(_unquote_kv(match.group("secret")))
    try:
        parsed = conninfo.conninfo_to_dict(text).get("password")
    except psycopg.ProgrammingError:
        parsed = None
    if parsed:
        out.add(str(parsed))
    return {s for s in out if s}


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every later ``mask_secrets`` call of this process."""
    if value:
        with _registered_lock:
            _registered.add(value)


def register_dsn(dsn: str) -> None:
    """Mask the password of ``dsn`` (every form of it) from now on."""
    for candidate in password_candidates(dsn):
        register_secret(candidate)


@lru_cache(maxsize=32)
def _url_candidates(url: str) -> frozenset[str]:
    return frozenset(password_candidates(url))


def _known_secrets() -> list[str]:
    """Registered secrets plus those in the environment now (read at call time: nothing to forget)."""
    found = set(_registered)
    for name in SECRET_ENV:
        found.add(os.environ.get(name, ""))
    for name in URL_ENV:
        url = os.environ.get(name, "")
        if url:
            found |= _url_candidates(url)
    # Longest first: a secret that contains another is replaced whole.
    return sorted((s for s in found if len(s) >= MIN_VALUE_LENGTH), key=len, reverse=True)


def mask_secrets(text: str) -> str:
    """Return ``text`` with every known or recognisable password replaced by ``***``, and no
    database location in libpq's words (``scrub_locations``)."""
    for secret in _known_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URI_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    return scrub_locations(_KV_PASSWORD.sub(lambda m: m.group("head") + MASK, text))


def scrub_locations(text: str) -> str:
    """``text`` without the host, port, socket or database name libpq and psycopg quote in their
    messages (a target is named by the caller: "cannot connect to target 'eu': ...")."""
    if '"' not in text and "'" not in text and "port" not in text:
        return text
    for shape, replacement in _LOCATIONS:
        text = shape.sub(replacement, text)
    return text


def malformed_url(dsn: str) -> str | None:
    """Why libpq would misread this connection string, or None when it reads as written.

    The reasons never quote the string: a misread password is exactly what they are about.
    """
    text = dsn.strip()
    try:
        parsed = conninfo.conninfo_to_dict(text)
    except psycopg.ProgrammingError as exc:
        # libpq quotes the offending token, which may be the password: keep only its words.
        detail = _QUOTED.sub('"…"', " ".join(str(exc).split()))
        return f"it cannot be parsed ({detail})"
    if not _SCHEME.match(text):
        return None
    rest = text.split("://", 1)[1]
    # libpq's reading: the userinfo ends at the first '@' or '/', the host list at '/' or '?'.
    stop = min((i for i in (rest.find("@"), rest.find("/")) if i >= 0), default=-1)
    after = rest[stop + 1 :] if stop >= 0 and rest[stop] == "@" else rest
    hosts = re.split(r"[/?]", after, maxsplit=1)[0]
    path = after[len(hosts) :].split("?", 1)[0]
    hint = "percent-encode '@' as %40, '/' as %2F, '%' as %25 in the password and database name"
    if "@" in hosts or "@" in path:
        return f"an '@' follows the host: {hint}"
    ports = str(parsed.get("port") or "")
    if any(p and not p.isdigit() for p in ports.split(",")):
        return f"the port is not a number: {hint}"
    return None
