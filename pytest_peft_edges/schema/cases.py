"""The case objects a case file is read into, and the error that names a file, line and field."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .. import helpers, limits, versions


class CaseFormatError(ValueError):
    """A malformed case: names the file, line and field."""

    def __init__(self, path: str | Path, line: int, field: str, message: str) -> None:
        # Everything here may come from the file (names, keys, values): escaped for the terminal, bounded.
        self.path, self.line = limits.printable(path, 300), line
        self.field, self.message = limits.printable(field, 300), limits.printable(message)
        super().__init__(f"{self.path}:{line}: {self.field}: {self.message}")


@dataclasses.dataclass(frozen=True)
class Upstream:
    """huggingface/peft issue and pull-request numbers."""

    issues: tuple[int, ...] = ()
    prs: tuple[int, ...] = ()

    def links(self) -> list[str]:
        base = "https://github.com/huggingface/peft"
        return [f"{base}/issues/{n}" for n in self.issues] + [f"{base}/pull/{n}" for n in self.prs]

    def label(self) -> str:
        parts = [f"#{n}" for n in self.issues] + [f"PR #{n}" for n in self.prs]
        return ", ".join(parts) or "no upstream issue"


@dataclasses.dataclass(frozen=True)
class ExpectedRaise:
    """A step whose fixed behaviour is to raise: exception type name and message regex."""

    type: str
    match: str


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """One entry of ``steps``."""

    op: str
    id: str
    fields: dict[str, Any]
    when: dict[str, str]
    raises: ExpectedRaise | None
    line: int


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    """One entry of ``expect``."""

    check: str
    id: str
    fields: dict[str, Any]
    when: dict[str, str]
    line: int


@dataclasses.dataclass(frozen=True)
class FailureSpec:
    """How a known bug makes the case fail: an exception at a step, or a failed check."""

    step: str | None
    check: str | None
    raises: str | None
    match: str | None


@dataclasses.dataclass(frozen=True)
class KnownBug:
    """A recorded bug: where it is present and the exact way the case fails there."""

    id: str
    summary: str
    upstream: Upstream
    affected: dict[str, str]
    fails: tuple[FailureSpec, ...]

    def affects(self, stack: dict[str, str | None] | None = None) -> bool:
        return versions.matches(self.affected, stack)

    def range_label(self) -> str:
        return ", ".join(f"{pkg} {spec}" for pkg, spec in self.affected.items())


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The tiny model a case builds first, stored as ``base``."""

    architecture: str
    head: str
    seed: int
    config: dict[str, Any]
    dtype: str | None = None


@dataclasses.dataclass(frozen=True)
class Case:
    """One validated scenario."""

    id: str
    title: str
    description: str
    upstream: Upstream
    tags: tuple[str, ...]
    requires: dict[str, str]
    set_order: tuple[str, ...]
    model: ModelSpec | None
    steps: tuple[StepSpec, ...]
    expect: tuple[CheckSpec, ...]
    known_bugs: tuple[KnownBug, ...]
    path: str
    line: int

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"

    def applies(self, stack: dict[str, str | None] | None = None) -> bool:
        """False when the installed versions lack what the case needs (``requires``)."""
        return versions.matches(self.requires, stack)

    def renamed(self, renaming: dict[str, str]) -> Case:
        """This case with every string field equal to a key of ``renaming`` replaced (see ``set_order``)."""
        model = self.model and dataclasses.replace(self.model, config=helpers.renamed(self.model.config, renaming))
        steps = tuple(dataclasses.replace(s, fields=helpers.renamed(s.fields, renaming)) for s in self.steps)
        expect = tuple(dataclasses.replace(c, fields=helpers.renamed(c.fields, renaming)) for c in self.expect)
        return dataclasses.replace(self, model=model, steps=steps, expect=expect)

    def bugs_in_range(self, stack: dict[str, str | None] | None = None) -> list[KnownBug]:
        return [bug for bug in self.known_bugs if bug.affects(stack)]


@dataclasses.dataclass(frozen=True)
class MalformedCase:
    """A case file (or document) that could not be read; reported as an error on its own test id."""

    id: str
    error: CaseFormatError

