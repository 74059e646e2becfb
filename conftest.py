"""Top-level conftest of the repo.

Kept free of hooks and ``pytest_plugins`` on purpose: with an editable install, pytest also loads it
when it collects the catalogue module (``pytest_peft_edges/catalogue.py``) from another directory.
pytester is enabled through ``addopts`` in pyproject.toml instead.
"""

from __future__ import annotations

import os

# The project's own runs never reach the Hub, even before the plugin is configured.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
