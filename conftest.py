"""Top-level conftest of the repo.

Kept free of hooks and ``pytest_plugins`` on purpose (pytester is enabled through ``addopts`` in
pyproject.toml): the project's own tests live in ``tests/`` and its ``conftest.py``.
"""

from __future__ import annotations

import os

# The project's own runs never reach the Hub, even before the plugin is configured.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
