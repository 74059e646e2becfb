"""What several step modules share."""

from __future__ import annotations

from typing import Any

from ..codegen import Render

#: What a load returns (torch's ``_IncompatibleKeys``), as the YAML fields name it.
LOAD_RESULT = {"missing": "missing_keys", "unexpected": "unexpected_keys"}


def _config_class(config_type: str) -> str:
    """``peft.<config_type>``, for a name that is a peft config class name."""
    if not (config_type.isidentifier() and config_type.endswith("Config")):
        raise ValueError(f"config_type {config_type!r} is not a peft config class name")
    return f"peft.{config_type}"


def _config(r: Render, config_type: str, config: dict[str, Any] | None) -> str:
    return f"{_config_class(config_type)}({r.kwargs(dict(config or {}))})"
