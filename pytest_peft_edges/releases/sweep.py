"""The sweep: the catalogue on every release of the index, two runs at a time, environments shared."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from pathlib import Path
from typing import Callable, Sequence

from .envs import Store
from .index import ReleaseIndex
from .runner import Run, close_zygotes, report_name, run_release

Runner = Callable[[str, str, Path], Run]


@dataclasses.dataclass
class SweepResult:
    runs: list[Run]
    seconds: float

    @property
    def failed(self) -> list[Run]:
        """Runs without a report (build failure, crash, wrong release imported)."""
        return [run for run in self.runs if run.error]

    @property
    def bad(self) -> list[tuple[Run, dict]]:
        return [(run, case) for run in self.runs for case in run.bad()]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.bad


def sweep(pairs: Sequence[tuple[str, str]], reports: Path, *, store: Store | None = None, jobs: int = 2,
          runner: Runner | None = None, log: Callable[[str], None] = print, bundled: bool = True,
          cases: Sequence[Path] = ()) -> SweepResult:
    """Run every (peft, transformers) pair of ``pairs`` (in that order, ``jobs`` at a time) and write
    each JSON report to ``reports/peft<v>-tf<v>.json``. ``runner`` replaces the real run (tests)."""
    start = time.perf_counter()
    if runner is None:
        if store is None:
            raise ValueError("sweep needs a store or a runner")
        real_store = store

        def runner(peft: str, transformers: str, report: Path) -> Run:
            return run_release(real_store, peft, transformers, report, bundled=bundled, cases=cases)

        # Build the environments ahead, in the order the runs need them, while earlier runs go on; two
        # at a time, since no run can start before the first is built (a core would idle meanwhile).
        prebuild = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        for transformers in dict.fromkeys(tf for _, tf in pairs):
            prebuild.submit(_quiet_env, real_store, transformers)
    else:
        prebuild = None
    runs: list[Run] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(runner, peft, tf, reports / report_name(peft, tf)) for peft, tf in pairs]
        for future in futures:  # in order, so the log reads oldest to newest
            run = future.result()
            runs.append(run)
            log(describe(run))
    if prebuild is not None:
        prebuild.shutdown(wait=True)
        close_zygotes()
    return SweepResult(runs, time.perf_counter() - start)


def _quiet_env(store: Store, transformers: str) -> None:
    try:
        store.env(transformers)
    except Exception:  # noqa: BLE001 - the run that needs it builds it again and reports the error
        pass


def describe(run: Run) -> str:
    if run.error:
        return f"{run.label}: NO REPORT: {run.error}"
    counts = run.verdicts()
    text = ", ".join(f"{counts[name]} {name}" for name in
                     ("fixed", "reproduced", "skipped", "regressed", "range-wrong", "error") if counts.get(name))
    line = f"{run.label}: {text} ({run.seconds:.1f} s)"
    for case in run.bad():
        line += f"\n    {case['verdict'].upper()} {case['id']}: {case.get('message', '')}"
    return line


def plan(index: ReleaseIndex, first: str | None = None, last: str | None = None, *, peft: Sequence[str] = (),
         transformers: str | None = None, boundary: bool = True) -> list[tuple[str, str]]:
    """The (peft, transformers) pairs of a sweep: ``peft`` releases (or the index from ``first`` to
    ``last``) with ``transformers`` (default: the index's), then the boundary pairs among them."""
    releases = [index.peft[index.position(v)] for v in peft] if peft else index.between(first, last)
    base = transformers or index.transformers
    pairs = [(v, base) for v in releases]
    if boundary:
        pairs += [(v, tf) for v, tf in index.boundary if v in releases]
    return pairs
