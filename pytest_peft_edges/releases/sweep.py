"""The sweep: the catalogue on every release of the index, two runs at a time, environments shared."""

from __future__ import annotations

import collections
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
    """Run every (peft, transformers) pair of ``pairs`` (``jobs`` at a time, started in
    :func:`start_order`, logged in the order of ``pairs``) and write each JSON report to
    ``reports/peft<v>-tf<v>.json``. ``runner`` replaces the real run (tests)."""
    start = time.perf_counter()
    if runner is None and store is None:
        raise ValueError("sweep needs a store or a runner")
    order = start_order(pairs, store.has_env if runner is None else lambda tf: True)
    if runner is None:
        real_store = store

        def runner(peft: str, transformers: str, report: Path) -> Run:
            return run_release(real_store, peft, transformers, report, bundled=bundled, cases=cases)

        # Build the environments ahead, in the order the runs need them, while earlier runs go on; two
        # at a time, since no run can start before the first is built (a core would idle meanwhile).
        prebuild = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        for transformers in dict.fromkeys(tf for task in order for _, tf in task):
            prebuild.submit(_quiet_env, real_store, transformers)
    else:
        prebuild = None
    futures: dict[tuple[str, str], concurrent.futures.Future[Run]] = {pair: concurrent.futures.Future() for pair in pairs}

    def run_task(task: list[tuple[str, str]]) -> None:
        for pair in task:
            try:
                futures[pair].set_result(runner(*pair, reports / report_name(*pair)))
            except BaseException as exc:  # noqa: BLE001 - handed to the log loop, which raises it
                futures[pair].set_exception(exc)

    runs: list[Run] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for task in order:
            pool.submit(run_task, task)
        for pair in pairs:  # in the plan's order, so the log reads oldest to newest
            run = futures[pair].result()
            runs.append(run)
            log(describe(run))
    if prebuild is not None:
        prebuild.shutdown(wait=True)
        close_zygotes()
    return SweepResult(runs, time.perf_counter() - start)


def start_order(pairs: Sequence[tuple[str, str]],
                built: Callable[[str], bool] = lambda tf: True) -> list[list[tuple[str, str]]]:
    """The runs as tasks, in the order they start; a task's runs go back to back on one worker. The runs
    of each environment but the most used one form one task (one fork server for them), and these start
    first, the longest first: each pays for its environment's server. The most used environment's runs,
    a task each, then fill the end, so the workers finish together instead of one waiting for the
    other's long last run. Runs whose environment is not ``built`` yet are a task each, last, in the
    plan's order: in a fresh sweep the first environment's runs keep the workers busy while the other
    environments are built."""
    unique = list(dict.fromkeys(pairs))
    runs_per_env = collections.Counter(tf for _, tf in unique)
    shared = max(runs_per_env, key=runs_per_env.__getitem__, default=None)
    grouped: dict[str, list[tuple[str, str]]] = {}
    fill: list[list[tuple[str, str]]] = []
    later: list[list[tuple[str, str]]] = []
    for pair in unique:
        if not built(pair[1]):
            later.append([pair])
        elif pair[1] == shared:
            fill.append([pair])
        else:
            grouped.setdefault(pair[1], []).append(pair)
    return sorted(grouped.values(), key=len, reverse=True) + fill + later


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
