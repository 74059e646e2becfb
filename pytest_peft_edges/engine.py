"""Run a case: execute the code its steps and checks render (:mod:`.codegen`), record how it departs
from the fixed behaviour, and judge that against its known bugs (:mod:`.verdicts`).

The code run here is the code ``peft-edges export`` prints. Steps run in order and the first step that
raises stops the case; a step whose fixed behaviour is to raise and did not counts as a failed check.
Then every check runs and every failing check is recorded. The case runs with torch's global RNG seeded to 0 inside ``torch.random.fork_rng``: adapter
initialisation is the same on every run, and the caller's RNG state is left as it was.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from . import codegen, gc_freeze, helpers, limits, offline, versions
from .schema import Case
from .verdicts import Failure, Judgement, judge as judge_failures

# Re-exported for callers that judge (the plugin's reporting, the CLI).
__all__ = ["Outcome", "run_case", "judge", "not_applicable", "peft_import_error"]


class CheckFailed(AssertionError):
    """A check (or a step that should have raised) found behaviour other than the fixed one."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What running a case produced: its failures in order, and how long it took."""

    failures: tuple[Failure, ...]
    duration_s: float


def _fail(check_id: str, problem: str | None) -> None:
    """``fail(id, problem)`` of the rendered code: a check failed when ``problem`` is not None."""
    if problem is not None:
        raise CheckFailed(str(problem))


def _exception_failure(at: str, exc: BaseException) -> Failure:
    kind = "case" if isinstance(exc, helpers.CaseError) else "exception"
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}" for frame in frames)
    return Failure(at, kind, tuple(cls.__name__ for cls in type(exc).__mro__ if cls is not object),
                   str(exc).strip() or type(exc).__name__, where)


def namespace(workdir: Path, renaming: dict[str, str] | None = None) -> dict[str, Any]:
    """The globals the rendered code runs in: the libraries, the helpers, ``WORKDIR``, ``N`` and ``fail``."""
    import json
    import pathlib
    import re

    import safetensors.torch
    import torch
    import transformers

    ns: dict[str, Any] = {name: getattr(helpers, name) for name in dir(helpers) if not name.startswith("__")}
    ns.update({"torch": torch, "transformers": transformers, "re": re, "pathlib": pathlib, "warnings": warnings,
               "json": json, "safetensors": safetensors,
               "WORKDIR": workdir,
               "N": dict(renaming or {}), "fail": _fail, "__name__": "peft_edges_case"})
    if peft_import_error() is None:
        import peft

        ns["peft"] = peft
    return ns


def run_case(case: Case, workdir: Path, stack: dict[str, str | None] | None = None) -> Outcome:
    """Run ``case`` in ``workdir`` (its private directory) and return its failures.

    A case with ``set_order`` runs once per iteration order of a set of those names, in this process;
    the failures of the first failing order count, labelled with that order.
    """
    stack = versions.stack() if stack is None else stack
    start = time.perf_counter()
    try:
        program = codegen.program(case)
    except (ValueError, KeyError) as exc:
        return Outcome((Failure("render", "case", ("CaseError",), f"cannot render the case: {exc}"),),
                       time.perf_counter() - start)
    try:  # the per-case time limit (limits.py): a timeout is the case's error, and the next case runs
        with limits.time_limit():
            if not case.set_order:
                failures = _run_once(program, workdir, stack, {})
            else:
                def run(renaming: dict[str, str], index: int) -> list[Failure]:
                    order_dir = workdir / f"set-order-{index}"
                    order_dir.mkdir(parents=True, exist_ok=True)
                    return _run_once(program, order_dir, stack, renaming)

                failures = failures_per_set_order(list(case.set_order), run)
    except limits.CaseTimeout as timeout:
        failures = [timeout.failure]
    return Outcome(tuple(_without_workdir(failure, workdir) for failure in failures), time.perf_counter() - start)


def _without_workdir(failure: Failure, workdir: Path) -> Failure:
    """``failure`` with the case's directory written ``WORKDIR`` (the name the exported script gives it):
    a message that quotes a path is the same in every session (pytest numbers its tmp directories)."""
    message = failure.message
    for path in sorted({str(workdir), str(workdir.resolve())}, key=len, reverse=True):
        message = message.replace(path, "WORKDIR")
    return failure if message == failure.message else dataclasses.replace(failure, message=message)


def failures_per_set_order(names: list[str], run: Any) -> list[Failure]:
    """Run once per iteration order of ``set(names)`` (``run(renaming, index)`` returns the failures of one
    run): the failures of the first failing order, labelled with that order."""
    for index, (order, renaming) in enumerate(helpers.set_order_renamings(names)):
        failures = run(renaming, index)
        if failures:
            label = helpers.set_order_label(order, renaming)
            return [dataclasses.replace(f, message=f"[{label}] {f.message}") for f in failures]
    return []


#: Caches a library may fill while a case runs (peft's BOFT tries to build a torch extension): kept in
#: the case's own directory, never in the user's home.
CACHE_DIRS = {"TORCH_EXTENSIONS_DIR": "torch_extensions"}


def _run_once(program: codegen.Program, workdir: Path, stack: dict[str, str | None],
              renaming: dict[str, str]) -> list[Failure]:
    import torch

    failures: list[Failure] = []
    # warnings of the library under test stay inside the case (a `warns` check captures its own)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings(), \
            offline.environment({name: str(workdir / sub) for name, sub in CACHE_DIRS.items()}):
        warnings.simplefilter("ignore")
        torch.default_generator.manual_seed(0)  # as the exported script does (codegen.SEED)
        ns = namespace(workdir, renaming)
        root = workdir.resolve()
        for block in program.steps:
            if block.when and not versions.matches(block.when, stack):
                continue
            outside = [name for name in block.paths if root not in (workdir / name).resolve().parents]
            if outside:  # the names are plain (schema); a link planted in the case dir must not lead out
                failures.append(Failure(block.id, "case", ("CaseError",), f"{outside[0]!r} leads outside the case's directory"))
                return failures
            try:
                exec(compile("\n".join(block.code()), f"<{program.case.id}: {block.id}>", "exec"), ns)  # noqa: S102
            except CheckFailed as exc:  # a step whose fixed behaviour is to raise did not
                failures.append(Failure(block.id, "check", ("CheckFailed",), str(exc)))
            except Exception as exc:  # noqa: BLE001 - any exception of the library under test
                failures.append(_exception_failure(block.id, exc))
                return failures
        for block in program.checks:
            if block.when and not versions.matches(block.when, stack):
                continue
            try:
                exec(compile("\n".join(block.code()), f"<{program.case.id}: {block.id}>", "exec"), ns)  # noqa: S102
            except CheckFailed as exc:
                failures.append(Failure(block.id, "check", ("CheckFailed",), str(exc)))
            except Exception as exc:  # noqa: BLE001
                failures.append(_exception_failure(block.id, exc))
    return failures


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


def judge(case: Case, outcome: Outcome, stack: dict[str, str | None] | None = None) -> Judgement:
    """The verdict for ``outcome`` of ``case`` on the versions of ``stack``."""
    stack = versions.stack() if stack is None else stack
    return judge_failures(list(outcome.failures), list(case.known_bugs), stack)
