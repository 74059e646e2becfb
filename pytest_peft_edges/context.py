"""What a running case holds: named objects, its private work directory, captured warnings."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import warnings
from pathlib import Path
from typing import Any, Iterator

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
#: Loggers whose records count as warnings of a step (transformers' LOAD REPORT goes there).
CAPTURED_LOGGERS = ("peft", "transformers")


class CaseError(RuntimeError):
    """The case itself is wrong at run time (a missing object, a bad name): never a known bug."""


class CheckFailed(AssertionError):
    """A check found behaviour other than the fixed one."""


@dataclasses.dataclass(frozen=True)
class Captured:
    """One warning or log record raised during a step."""

    categories: tuple[str, ...]  # class names of the warning's MRO, or ("log", "log.WARNING")
    message: str

    def __str__(self) -> str:
        return f"{self.categories[0]}: {self.message}"


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[Captured]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(Captured(("log", f"log.{record.levelname}"), record.getMessage()))


class Context:
    """Named objects made by steps, with dotted access for fields (``load.unexpected``)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.objects: dict[str, Any] = {}
        self.captured: dict[str, list[Captured]] = {}

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

    def directory(self, name: str) -> Path:
        """The path of the case's directory ``name`` inside its private tmp directory."""
        if not _NAME.match(name):
            raise CaseError(f"{name!r} is not a plain directory name")
        return self.workdir / name

    @contextlib.contextmanager
    def capture(self, step_id: str) -> Iterator[list[Captured]]:
        """Record every warning and peft/transformers log record raised inside the block."""
        sink: list[Captured] = []
        self.captured[step_id] = sink
        handler = _ListHandler(sink)
        loggers = [logging.getLogger(name) for name in CAPTURED_LOGGERS]
        for logger in loggers:
            logger.addHandler(handler)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    yield sink
                finally:
                    for item in caught:
                        names = tuple(cls.__name__ for cls in item.category.__mro__ if cls is not object)
                        sink.append(Captured(names, str(item.message)))
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
