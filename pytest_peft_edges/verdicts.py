"""Verdicts as typed values, the one table that maps each to its outcome, and the judgement itself.

- ``fixed``: no known bug's range holds the installed versions, and every step and check passed.
- ``reproduced``: a known bug's range holds the installed versions and the case failed exactly the
  recorded way (every failure matches a recorded failure of a bug in range).
- ``range-wrong``: a known bug's range holds the installed versions, but the case passed.
- ``regressed``: outside every range, a check failed or a recorded failure showed up.
- ``error``: an unrecorded exception, a failure other than the recorded one inside a range, or a
  malformed case.
- ``skipped``: not run (``requires`` unmet, peft not importable, or ``--peft-edges-known=skip``).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from . import limits, versions


class Verdict(str, enum.Enum):
    """The judged outcome of one case on the installed versions (its value is the word reports print)."""

    FIXED = "fixed"
    REPRODUCED = "reproduced"
    REGRESSED = "regressed"
    RANGE_WRONG = "range-wrong"
    ERROR = "error"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class Action:
    """What a verdict does: the pytest outcome (``known`` = decided by ``--peft-edges-known``), the exit
    code of ``peft-edges list --check`` and of an exported script, and whether CI should fail on it."""

    pytest: str  # "pass", "known", "fail" or "skip"
    exit_code: int
    bad: bool


#: The verdict table: the plugin, the CLI and the exported scripts all act on it.
ACTIONS: dict[Verdict, Action] = {
    Verdict.FIXED: Action("pass", 0, bad=False),
    Verdict.REPRODUCED: Action("known", 1, bad=False),
    Verdict.REGRESSED: Action("fail", 1, bad=True),
    Verdict.RANGE_WRONG: Action("fail", 0, bad=True),
    Verdict.ERROR: Action("fail", 2, bad=True),
    Verdict.SKIPPED: Action("skip", 2, bad=False),
}


@dataclasses.dataclass(frozen=True)
class Failure:
    """One way a run departed from the fixed behaviour, in the order it happened."""

    at: str  # the step or check id
    kind: str  # "exception", "check" or "case"
    types: tuple[str, ...]  # exception class names (MRO); ("CheckFailed",) for a check
    message: str
    where: str = ""

    def describe(self) -> str:
        """``at 'step': ValueError: message`` / ``at 'check': check failed: message``."""
        kinds = {"exception": f"{self.types[0]}: ", "check": "check failed: ", "case": "case error: "}
        return f"at {self.at!r}: {kinds[self.kind]}{self.message}"


@dataclasses.dataclass(frozen=True)
class Judgement:
    """A verdict with its message, the known bug it names and the failure it rests on."""

    verdict: Verdict
    message: str
    bug: Any = None  # schema.KnownBug
    failure: Failure | None = None

    @property
    def name(self) -> str:
        return self.verdict.value


def matches(spec: Any, failure: Failure) -> bool:
    """Does ``failure`` happen exactly as the recorded failure ``spec`` (a schema.FailureSpec) says?"""
    if spec.raises is not None:
        if failure.kind not in ("exception", "case") or spec.raises not in failure.types:
            return False
        if spec.step is not None and failure.at != spec.step:
            return False
    elif failure.kind != "check" or failure.at != spec.check:
        return False
    return spec.match is None or limits.search(spec.match, failure.message)


def _explaining(bugs: list[Any], failure: Failure) -> Any:
    return next((bug for bug in bugs if any(matches(spec, failure) for spec in bug.fails)), None)


def _spec(spec: Any) -> str:
    where = f"step {spec.step!r}" if spec.step else f"check {spec.check!r}" if spec.check else "any step"
    return f"{spec.raises or 'check failure'} at {where}" + (f" matching /{spec.match}/" if spec.match else "")


def judge(failures: list[Failure], bugs: list[Any], stack: dict[str, str | None]) -> Judgement:
    """The verdict of a run with ``failures`` for a case whose known bugs are ``bugs`` on ``stack``."""
    in_range = [bug for bug in bugs if versions.matches(bug.affected, stack)]
    installed = ", ".join(f"{name} {stack.get(name)}" for name in ("peft", "transformers", "torch"))
    if not failures:
        if in_range:
            bug = in_range[0]
            return Judgement(Verdict.RANGE_WRONG, f"known bug {bug.id} ({bug.range_label()}) should affect "
                             f"{installed}, but the case passed: its recorded range is wrong", bug)
        return Judgement(Verdict.FIXED, "behaves as fixed")
    timeout = next((f for f in failures if f.types[:1] == ("CaseTimeout",)), None)
    if timeout is not None:
        return Judgement(Verdict.ERROR, timeout.message, None, timeout)
    first = failures[0]
    also = "".join(f"; also {failure.describe()}" for failure in failures[1:4])
    if in_range:
        unexplained = [f for f in failures if _explaining(in_range, f) is None]
        if not unexplained:
            bug = _explaining(in_range, first)
            return Judgement(Verdict.REPRODUCED, f"known bug {bug.id} reproduced ({bug.upstream.label()}): "
                             f"{first.describe()}{also}", bug, first)
        expected = "; ".join(f"{bug.id}: " + " | ".join(_spec(s) for s in bug.fails) for bug in in_range)
        odd = unexplained[0]
        if odd.kind == "case":
            return Judgement(Verdict.ERROR, f"the case itself is broken {odd.describe()}", None, odd)
        return Judgement(Verdict.ERROR, f"failed another way than recorded {odd.describe()} (recorded: {expected})",
                         None, odd)
    case_errors = [f for f in failures if f.kind == "case"]
    if case_errors:
        return Judgement(Verdict.ERROR, f"the case itself is broken {case_errors[0].describe()}", None, case_errors[0])
    other = _explaining(bugs, first)
    if other is not None:
        return Judgement(Verdict.REGRESSED, f"known bug {other.id} ({other.upstream.label()}) shows outside its "
                         f"recorded range ({other.range_label()}): {first.describe()}{also}", other, first)
    if first.kind == "check":
        return Judgement(Verdict.REGRESSED, f"the fixed behaviour does not hold {first.describe()}{also}", None, first)
    return Judgement(Verdict.ERROR, f"unexpected exception {first.describe()}", None, first)
