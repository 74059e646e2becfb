"""Run a case and judge the outcome against its known bugs: the verdict.

Verdicts:
- ``fixed``: no known bug's range holds the installed versions, and every step and check passed.
- ``reproduced``: a known bug's range holds the installed versions and the case failed exactly the
  recorded way (every failure matches a recorded failure of a bug in range).
- ``range-wrong``: a known bug's range holds the installed versions, but the case passed.
- ``regressed``: outside every range, a check failed or a recorded failure showed up.
- ``error``: an unrecorded exception, a failure other than the recorded one inside a range, or a
  malformed case.
- ``skipped``: not run (``--peft-edges-known=skip`` on an affected stack).
"""

from __future__ import annotations

import dataclasses
import re
import time
import traceback
from pathlib import Path

from . import checks as _checks  # noqa: F401  (registers the checks)
from . import steps as _steps  # noqa: F401  (registers the steps)
from . import versions
from .context import CaseError, CheckFailed, Context
from .registry import CHECKS, STEPS
from .schema import Case, FailureSpec, KnownBug

VERDICTS = ("fixed", "reproduced", "regressed", "range-wrong", "error", "skipped")


@dataclasses.dataclass(frozen=True)
class Failure:
    """What went wrong at one step or check."""

    at: str  # the step or check id
    kind: str  # "exception" (a step raised), "check" (a check or a step's expected raise failed), "case"
    type_names: tuple[str, ...]  # the exception's MRO class names
    message: str
    detail: str = ""  # a short traceback for exceptions

    @property
    def type(self) -> str:
        return self.type_names[0] if self.type_names else ""

    def describe(self) -> str:
        label = f"{self.type}: " if self.kind == "exception" else "check failed: " if self.kind == "check" else "case error: "
        return f"at {self.at!r}: {label}{self.message}"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What running a case produced."""

    failures: tuple[Failure, ...]
    ran: tuple[str, ...]
    duration_s: float


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The judged outcome of one case on the installed versions."""

    name: str
    message: str
    bug: KnownBug | None = None
    failure: Failure | None = None

    @property
    def passed(self) -> bool:
        return self.name == "fixed"


def _exception_failure(at: str, exc: BaseException) -> Failure:
    names = tuple(cls.__name__ for cls in type(exc).__mro__ if cls is not object)
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    tb = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}" for frame in tb)
    return Failure(at, "exception", names, str(exc).strip() or type(exc).__name__, f"{detail}\n  ({where})")


def run_case(case: Case, workdir: Path, stack: dict[str, str | None] | None = None) -> Outcome:
    """Run ``case`` in ``workdir``: steps in order (stop at the first failure), then every check."""
    stack = versions.stack() if stack is None else stack
    ctx = Context(workdir)
    failures: list[Failure] = []
    ran: list[str] = []
    start = time.perf_counter()
    if case.model is not None:
        try:
            STEPS["build_model"].call(ctx, {"as": "base", "architecture": case.model.architecture,
                                            "head": case.model.head, "seed": case.model.seed,
                                            "config": case.model.config})
        except Exception as exc:  # noqa: BLE001 - reported as a failure of the case
            failures.append(_exception_failure("model", exc))
    for spec in case.steps if not failures else ():
        if spec.when and not versions.matches(spec.when, stack):
            continue
        ran.append(spec.id)
        raised: BaseException | None = None
        with ctx.capture(spec.id):
            try:
                STEPS[spec.op].call(ctx, spec.fields)
            except CaseError as exc:
                failures.append(Failure(spec.id, "case", ("CaseError",), str(exc)))
                break
            except Exception as exc:  # noqa: BLE001 - any exception of the library under test
                raised = exc
        if spec.raises is None and raised is not None:
            failures.append(_exception_failure(spec.id, raised))
            break
        if spec.raises is not None:
            if raised is None:
                failures.append(Failure(spec.id, "check", ("CheckFailed",),
                                        f"expected {spec.raises.type} matching /{spec.raises.match}/, nothing was raised"))
                continue
            names = {cls.__name__ for cls in type(raised).__mro__}
            if spec.raises.type not in names or not re.search(spec.raises.match, str(raised)):
                failures.append(_exception_failure(spec.id, raised))
                break
    if not failures:
        for check_spec in case.expect:
            if check_spec.when and not versions.matches(check_spec.when, stack):
                continue
            ran.append(check_spec.id)
            try:
                CHECKS[check_spec.check].call(ctx, check_spec.fields)
            except CheckFailed as exc:
                failures.append(Failure(check_spec.id, "check", ("CheckFailed",), str(exc)))
            except CaseError as exc:
                failures.append(Failure(check_spec.id, "case", ("CaseError",), str(exc)))
            except Exception as exc:  # noqa: BLE001
                failures.append(_exception_failure(check_spec.id, exc))
    return Outcome(tuple(failures), tuple(ran), time.perf_counter() - start)


def failure_matches(spec: FailureSpec, failure: Failure) -> bool:
    """Does ``failure`` happen exactly as the known bug records it?"""
    if spec.raises is not None:
        if failure.kind != "exception" or spec.raises not in failure.type_names:
            return False
        if spec.step is not None and failure.at != spec.step:
            return False
    else:
        if failure.kind != "check" or failure.at != spec.check:
            return False
    return spec.match is None or re.search(spec.match, failure.message) is not None


def _explaining(bugs: list[KnownBug] | tuple[KnownBug, ...], failure: Failure) -> KnownBug | None:
    for bug in bugs:
        if any(failure_matches(spec, failure) for spec in bug.fails):
            return bug
    return None


def judge(case: Case, outcome: Outcome, stack: dict[str, str | None] | None = None) -> Verdict:
    """The verdict for ``outcome`` of ``case`` on the versions of ``stack``."""
    stack = versions.stack() if stack is None else stack
    in_range = case.bugs_in_range(stack)
    failures = outcome.failures
    case_errors = [f for f in failures if f.kind == "case"]
    if case_errors:
        return Verdict("error", f"the case itself is broken {case_errors[0].describe()}", failure=case_errors[0])
    if not failures:
        if in_range:
            bug = in_range[0]
            return Verdict("range-wrong", f"known bug {bug.id} ({bug.range_label()}) should affect "
                           f"{versions.describe(stack)}, but the case passed: its recorded range is wrong", bug=bug)
        return Verdict("fixed", "behaves as fixed")
    first = failures[0]
    if in_range:
        unexplained = [f for f in failures if _explaining(in_range, f) is None]
        if not unexplained:
            bug = _explaining(in_range, first)
            return Verdict("reproduced", f"known bug {bug.id} reproduced ({bug.upstream.label()}): {first.describe()}",
                           bug=bug, failure=first)
        expected = "; ".join(f"{bug.id}: " + " | ".join(s.describe() for s in bug.fails) for bug in in_range)
        odd = unexplained[0]
        return Verdict("error", f"failed another way than recorded {odd.describe()} (recorded: {expected})", failure=odd)
    other = _explaining(case.known_bugs, first)
    if other is not None:
        return Verdict("regressed", f"known bug {other.id} ({other.upstream.label()}) shows outside its recorded range "
                       f"({other.range_label()}): {first.describe()}", bug=other, failure=first)
    if first.kind == "check":
        return Verdict("regressed", f"the fixed behaviour does not hold {first.describe()}", failure=first)
    return Verdict("error", f"unexpected exception {first.describe()}", failure=first)
