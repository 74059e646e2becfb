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
import time
from typing import Any
from pathlib import Path

from . import checks as _checks  # noqa: F401  (registers the checks)
from . import steps as _steps  # noqa: F401  (registers the steps)
from . import gc_freeze, limits, standalone, versions  # limits: issue 15
from .context import Context
from .registry import CHECKS, STEPS
from .schema import Case, KnownBug

VERDICTS = ("fixed", "reproduced", "regressed", "range-wrong", "error", "skipped")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What running a case produced: failure records (see :class:`standalone.Recorder`) in order."""

    failures: tuple[dict[str, Any], ...]
    duration_s: float


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The judged outcome of one case on the installed versions."""

    name: str
    message: str
    bug: KnownBug | None = None
    failure: dict[str, Any] | None = None


def run_case(case: Case, workdir: Path, stack: dict[str, str | None] | None = None) -> Outcome:
    """Run ``case`` in ``workdir``: steps in order (stop at the first failure), then every check.

    A case with ``set_order`` runs once per iteration order of a set of those names, in this process
    (see :func:`standalone.failures_per_set_order`); the failures of the first failing order count.
    """
    stack = versions.stack() if stack is None else stack
    start = time.perf_counter()
    # issue 15 (limits.py): the per-case time limit; a timeout is the case's `error` and the next case runs.
    try:
        with limits.time_limit():
            if case.set_order:
                def run(renaming: dict[str, str], index: int) -> list[dict[str, Any]]:
                    order_dir = workdir / f"set-order-{index}"
                    order_dir.mkdir(parents=True, exist_ok=True)
                    return _run_once(case.renamed(renaming), order_dir, stack)

                failures = standalone.failures_per_set_order(case.set_order, run)
            else:
                failures = _run_once(case, workdir, stack)
    except limits.CaseTimeout as timeout:
        failures = [timeout.failure]
    return Outcome(tuple(failures), time.perf_counter() - start)


def _run_once(case: Case, workdir: Path, stack: dict[str, str | None]) -> list[dict[str, Any]]:
    recorder = standalone.Recorder()
    ctx = Context(workdir, recorder)
    try:
        if case.model is not None:
            with recorder.step("model"):
                STEPS["build_model"].call(ctx, {"as": "base", "architecture": case.model.architecture,
                                                "head": case.model.head, "seed": case.model.seed,
                                                "config": case.model.config})
        for spec in case.steps:
            if spec.when and not versions.matches(spec.when, stack):
                continue
            raises = (spec.raises.type, spec.raises.match) if spec.raises else None
            with recorder.step(spec.id, raises):
                STEPS[spec.op].call(ctx, spec.fields)
    except standalone.StopCase:
        pass
    if not recorder.failures:
        for check_spec in case.expect:
            if check_spec.when and not versions.matches(check_spec.when, stack):
                continue
            recorder.check(check_spec.id, lambda spec=check_spec: CHECKS[spec.check].call(ctx, spec.fields))
    return recorder.failures


_IMPORT_ERROR: list[str | None] = []


def peft_import_error() -> str | None:
    """Why ``import peft`` fails on this stack (a known bug of some pairs), or None; checked once."""
    if not _IMPORT_ERROR:
        try:
            with gc_freeze.heavy_imports():
                import torch.distributed.tensor  # noqa: F401  (old transformers + new peft need it first)
                import peft  # noqa: F401
        except ImportError as exc:
            _IMPORT_ERROR.append(f"{type(exc).__name__}: {exc}")
        else:
            _IMPORT_ERROR.append(None)
    return _IMPORT_ERROR[0]


def not_applicable(case: Case, stack: dict[str, str | None] | None = None) -> str | None:
    """Why ``case`` cannot run on this stack (``requires`` unmet, or peft not importable), or None."""
    stack = versions.stack() if stack is None else stack
    if not case.applies(stack):
        wanted = ", ".join(f"{pkg} {spec}" for pkg, spec in case.requires.items())
        return f"needs {wanted}, installed {versions.describe(stack)}"
    if not (case.steps and case.steps[0].op == "import_peft"):
        error = peft_import_error()
        if error is not None:
            return f"peft cannot be imported here ({error})"
    return None


def bug_record(bug: KnownBug) -> dict[str, Any]:
    """A known bug as the plain dict the shared judgement (and exported scripts) use."""
    return {"id": bug.id, "label": bug.upstream.label(), "affected": dict(bug.affected), "range": bug.range_label(),
            "fails": [dataclasses.asdict(spec) for spec in bug.fails]}


def judge(case: Case, outcome: Outcome, stack: dict[str, str | None] | None = None) -> Verdict:
    """The verdict for ``outcome`` of ``case`` on the versions of ``stack`` (see :func:`standalone.judge`)."""
    stack = versions.stack() if stack is None else stack
    result = standalone.judge(list(outcome.failures), [bug_record(b) for b in case.known_bugs], stack)
    bug = next((b for b in case.known_bugs if result["bug"] and b.id == result["bug"]["id"]), None)
    return Verdict(result["verdict"], result["message"], bug=bug, failure=result["failure"])
