"""Keep a case offline while it runs, and only then: tiny models are built from config, nothing may
reach the Hub, and the host session's own tests keep the environment they were given.

Setting the variables is not enough once ``huggingface_hub`` (or ``transformers``) was imported: they
read them at import. So while a case runs, the already-imported modules' cached flags are patched too,
and the Hub's HTTP sessions are reset so a cached online session is not reused; everything is restored
when the case ends.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

#: Variables set while a case runs (then restored, or removed if they were unset).
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

#: Module-level flags that cache the offline variables at import: (module, attribute, offline value).
CACHED_FLAGS = (
    ("huggingface_hub.constants", "HF_HUB_OFFLINE", True),
    ("huggingface_hub.constants", "HF_HUB_DISABLE_TELEMETRY", True),
    ("huggingface_hub.constants", "HF_HUB_DISABLE_PROGRESS_BARS", True),
    ("transformers.utils.hub", "_is_offline_mode", True),
    ("transformers.utils.import_utils", "_is_offline_mode", True),
)

_MISSING = object()


def enforce_offline() -> dict[str, str]:
    """Set the offline variables that are not set yet; return the ones this call set (for a process
    of its own, e.g. the ``peft-edges`` command; never called by the pytest plugin)."""
    applied = {}
    for name, value in OFFLINE_ENV.items():
        if name not in os.environ:
            os.environ[name] = value
            applied[name] = value
    return applied


def _reset_hub_sessions() -> None:
    utils = sys.modules.get("huggingface_hub.utils")
    reset = getattr(utils, "reset_sessions", None)
    if callable(reset):
        reset()


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set inside, every one of those variables as it was after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def case_offline() -> Iterator[None]:
    """Offline inside (environment and cached flags of already-imported modules), as before after."""
    patched: list[tuple[Any, str, Any]] = []
    try:
        with environment(OFFLINE_ENV):
            for module_name, attribute, value in CACHED_FLAGS:
                module = sys.modules.get(module_name)
                if module is not None and hasattr(module, attribute):
                    patched.append((module, attribute, getattr(module, attribute)))
                    setattr(module, attribute, value)
            if "huggingface_hub.utils" in sys.modules:
                _reset_hub_sessions()  # a session built online would keep going online
            yield
    finally:  # the environment is restored by now
        for module, attribute, value in reversed(patched):
            setattr(module, attribute, value)
        # Modules first imported during the case read the offline variables: put their flags back to
        # what the restored environment says, as if they had been imported now.
        done = {(id(module), attribute) for module, attribute, _ in patched}
        for module_name, attribute, _ in CACHED_FLAGS:
            module = sys.modules.get(module_name)
            if module is not None and hasattr(module, attribute) and (id(module), attribute) not in done:
                setattr(module, attribute, _from_env(attribute))
        _reset_hub_sessions()


def _true(name: str) -> bool:
    return os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"}


def _from_env(attribute: str) -> bool | None:
    """The value huggingface_hub / transformers compute at import for ``attribute``."""
    if attribute == "HF_HUB_DISABLE_PROGRESS_BARS":
        return _true(attribute) if attribute in os.environ else None
    if attribute == "HF_HUB_DISABLE_TELEMETRY":
        return _true(attribute) or _true("DISABLE_TELEMETRY") or _true("DO_NOT_TRACK")
    return _true("HF_HUB_OFFLINE") or _true("TRANSFORMERS_OFFLINE")
