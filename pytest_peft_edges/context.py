"""What a running case holds: named objects, its private work directory, captured warnings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .standalone import Captured, CaseError, CheckFailed, Recorder

__all__ = ["CaseError", "CheckFailed", "Captured", "Context"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


class Context:
    """Named objects made by steps, with dotted access for fields (``load.unexpected``)."""

    def __init__(self, workdir: Path, recorder: Recorder | None = None) -> None:
        self.workdir = workdir
        self.objects: dict[str, Any] = {}
        self.recorder = recorder if recorder is not None else Recorder()

    def put(self, name: str, value: Any) -> None:
        self.objects[name] = value

    def get(self, reference: str) -> Any:
        head, *fields = reference.split(".")
        if head not in self.objects:
            raise CaseError(f"{head!r} was not made by an earlier step (was it skipped by 'when'?)")
        value = self.objects[head]
        for field in fields:
            if field.startswith("_"):
                raise CaseError(f"private field {field!r} cannot be read")
            if isinstance(value, dict):
                if field not in value:
                    raise CaseError(f"{reference!r}: no key {field!r}; keys: {sorted(value)}")
                value = value[field]
            elif hasattr(value, field):
                value = getattr(value, field)
            else:
                raise CaseError(f"{reference!r}: {type(value).__name__} has no field {field!r}")
        return value

    def records(self, step_id: str) -> list[Captured]:
        """What step ``step_id`` captured."""
        return self.recorder.records(step_id)

    def directory(self, name: str) -> Path:
        """The path of the case's directory ``name`` inside its private tmp directory."""
        if not _NAME.match(name):
            raise CaseError(f"{name!r} is not a plain directory name")
        return self.workdir / name
