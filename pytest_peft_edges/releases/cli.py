"""The ``peft-edges sweep`` and ``peft-edges bisect`` subcommands (hooked into ``cli.build_parser``; a
wrong id or option raises ``cli.UsageError``, which ``cli.main`` reports on one line with exit 2)."""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

#: Tests replace this to bisect without installing anything: ``factory(args, case, window) -> observer``.
OBSERVER_FACTORY: Callable[..., Callable[[str], Any]] | None = None


def add_subcommands(sub: Any) -> None:
    """Add ``sweep`` and ``bisect`` to the ``peft-edges`` subparsers ``sub``."""
    sweep = sub.add_parser("sweep", help="run the catalogue on every peft release of the supported range")
    _common(sweep)
    sweep.add_argument("--peft", action="append", default=[], metavar="V", help="only these releases (repeatable)")
    sweep.add_argument("--no-boundary", action="store_true", help="skip the transformers-5 boundary pairs")
    sweep.add_argument("--reports", default="reports", metavar="DIR",
                       help="write each run's JSON report here (default: reports)")
    sweep.add_argument("--table", metavar="FILE.json",
                       help="merge the reports into this table file (its other columns are kept)")
    sweep.add_argument("--markdown", metavar="FILE", help="write the merged table as markdown here")
    sweep.add_argument("--readme", metavar="FILE", help="replace the table between the markers in this file")
    sweep.set_defaults(func=cmd_sweep)

    bisect = sub.add_parser("bisect", help="find the releases where a case's outcome changes")
    bisect.add_argument("case_id", metavar="CASE")
    bisect.add_argument("--bug", metavar="ID", help="probe the recorded range of this known bug only")
    _common(bisect)
    bisect.add_argument("--all", action="store_true", help="run every release of the window, not a bisection")
    bisect.set_defaults(func=cmd_bisect)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="first", metavar="X", help="oldest release (default: the index's)")
    parser.add_argument("--to", dest="last", metavar="Y", help="newest release (default: the index's)")
    parser.add_argument("--transformers", metavar="V", help="transformers release (default: 4.57.6)")
    parser.add_argument("--cases", action="append", default=[], metavar="PATH", help="your own YAML cases")
    parser.add_argument("--cache", metavar="DIR", help="environments and releases (default: ~/.cache/peft-edges)")
    parser.add_argument("--torch", metavar="SPEC", help="torch requirement of the environments "
                        "(default: torch==<the installed torch>)")
    parser.add_argument("--index", metavar="FILE.json", help="a release index instead of the built-in one")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="runs at a time (default: 2)")


def _store(args: argparse.Namespace) -> Any:
    from .envs import Store

    return Store(Path(args.cache) if args.cache else None, torch=args.torch,
                 log=lambda line: print(line, file=sys.stderr, flush=True))


def _index(args: argparse.Namespace) -> Any:
    from .index import load_index

    return load_index(args.index)


def cmd_sweep(args: argparse.Namespace) -> int:
    from .. import matrix
    from ..cli import UsageError
    from .sweep import plan, sweep

    missing = [p for p in args.cases if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such case path: {', '.join(missing)}")
    try:
        index = _index(args)
        pairs = plan(index, args.first, args.last, peft=args.peft, transformers=args.transformers,
                     boundary=not args.no_boundary)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    reports = Path(args.reports)
    print(f"peft-edges sweep: {len(pairs)} runs ({len({p for p, _ in pairs})} peft releases), "
          f"{args.jobs} at a time; reports in {reports}", flush=True)
    result = sweep(pairs, reports, store=_store(args), jobs=args.jobs, cases=[Path(p) for p in args.cases],
                   log=lambda line: print(line, flush=True))
    written = [run.report for run in result.runs if run.document is not None]
    if written and (args.table or args.markdown or args.readme):
        sources = ([Path(args.table)] if args.table and Path(args.table).is_file() else []) + written
        try:
            matrix.write_table(matrix.build_table(matrix.load_reports(sources)), json_path=args.table,
                               markdown=args.markdown, readme=args.readme)
        except ValueError as exc:  # a README without markers, an unreadable table: after the runs, not a traceback
            raise UsageError(str(exc)) from None
    print(f"peft-edges sweep: {len(result.runs)} runs in {result.seconds:.1f} s: "
          f"{len(result.failed)} without a report, {len(result.bad)} regressed/range-wrong/error verdicts")
    return 0 if result.ok else 1


def find_case(case_id: str, extra: list[str]) -> Any:
    """The case ``case_id`` from ``extra`` paths first, then the bundled catalogue."""
    from ..cli import UsageError
    from ..plugin import bundled_cases_dir
    from ..schema import Case, load_cases

    seen: list[str] = []
    for path in [*[Path(p) for p in extra], bundled_cases_dir()]:
        if not path.exists():
            raise UsageError(f"no such case path: {path}")
        for case in load_cases([path]):
            seen.append(case.id)
            if case.id == case_id:
                if not isinstance(case, Case):
                    raise UsageError(f"case {case_id!r} is malformed: {case.error}")
                return case
    close = difflib.get_close_matches(case_id, seen, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run 'peft-edges list' for the ids"
    raise UsageError(f"unknown case id {case_id!r}{hint}")


def cmd_bisect(args: argparse.Namespace) -> int:
    from ..cli import UsageError
    from .bisect import bisect, outcome, render

    case = find_case(args.case_id, args.cases)
    bugs = list(case.known_bugs)
    if args.bug:
        bugs = [b for b in bugs if b.id == args.bug]
        if not bugs:
            known = ", ".join(b.id for b in case.known_bugs) or "none"
            raise UsageError(f"case {case.id} records no known bug {args.bug!r} (its bugs: {known})")
    try:
        index = _index(args)
        window = index.between(args.first, args.last)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    transformers = args.transformers or index.transformers
    stack = {"transformers": transformers}
    if OBSERVER_FACTORY is not None:
        observe = OBSERVER_FACTORY(args, case, window)
        result = bisect(case.id, window, observe, bugs, stack=stack, jobs=args.jobs, every=args.all)
    else:
        from .runner import close_zygotes, run_release

        store = _store(args)
        with tempfile.TemporaryDirectory(prefix="peft-edges-bisect-") as tmp:
            def observe(release: str) -> tuple[str, dict[str, Any]]:
                run = run_release(store, release, transformers, Path(tmp) / f"{release}.json", bundled=False,
                                  cases=[Path(case.path)])
                if run.error:
                    return "error", {"message": run.error}
                entry = next((c for c in run.document["cases"] if c["id"] == case.id), None)
                label = outcome(entry)
                print(f"  peft {release}: {label}", file=sys.stderr, flush=True)
                return label, entry or {"message": "the case did not run"}

            try:
                result = bisect(case.id, window, observe, bugs, stack=stack, jobs=args.jobs, every=args.all)
            finally:
                close_zygotes()
    print(render(result, f" with transformers {transformers}"))
    return 0 if result.ok else 1
