"""Nothing phones home: this machine (and many production hosts) has no internet."""

from __future__ import annotations

import os

TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def disable_telemetry() -> None:
    """Set pgtender's defaults for Prefect/GX telemetry (explicit environment values win)."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
