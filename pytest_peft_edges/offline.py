"""Keep every run offline: tiny models are built from config, nothing may reach the Hub."""

from __future__ import annotations

import os

#: Variables set for the session unless the user already chose a value.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def enforce_offline() -> dict[str, str]:
    """Set the offline variables that are not set yet; return the ones this call set."""
    applied = {}
    for name, value in OFFLINE_ENV.items():
        if name not in os.environ:
            os.environ[name] = value
            applied[name] = value
    return applied
