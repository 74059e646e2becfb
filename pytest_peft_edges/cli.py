"""The ``peft-edges`` command: list the catalogue, print the environment, export a case, merge reports."""

from __future__ import annotations

import argparse
import difflib
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn, Sequence

from . import __version__


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"peft-edges: error: {message} (see peft-edges --help)\n")


class UsageError(Exception):
    """A wrong id or option: one line on stderr, exit 2."""


def _all_cases(extra: Sequence[str], catalogue: bool = True) -> list[Any]:
    from .plugin import bundled_cases_dir
    from .schema import load_cases

    return load_cases(([bundled_cases_dir()] if catalogue else []) + [Path(p) for p in extra])


def find_case(case_id: str, extra: Sequence[str] = ()) -> Any:
    """The valid case ``case_id``; UsageError with close matches otherwise."""
    from .schema import Case

    cases = _all_cases(extra)
    for case in cases:
        if case.id == case_id:
            if not isinstance(case, Case):
                raise UsageError(f"case {case_id!r} is malformed: {case.error}")
            return case
    close = difflib.get_close_matches(case_id, [c.id for c in cases], n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run 'peft-edges list' for the ids"
    raise UsageError(f"unknown case id {case_id!r}{hint}")


def cmd_list(args: argparse.Namespace) -> int:
    from .schema import Case

    cases = _all_cases(args.cases, catalogue=args.catalogue or not args.cases)
    if not args.check:
        for case in cases:
            if not isinstance(case, Case):
                print(f"{case.id}\n    MALFORMED: {case.error}")
                continue
            line = f"{case.id}\n    {case.title}\n    upstream: {', '.join(case.upstream.links()) or 'none'}"
            for bug in case.known_bugs:
                line += f"\n    known bug {bug.id}: {bug.range_label()}"
            print(line)
        print(_coverage([case for case in cases if isinstance(case, Case)]))
        return 0
    return _check(cases)


#: The areas of PEFT the catalogue covers, as case tags (README: what the catalogue covers).
AREAS = ("lora-variants", "tuners", "prompt-learning", "lifecycle", "save-load", "heads", "merging", "layers",
         "seq2seq", "transformers-boundary")


def _coverage(cases: list[Any]) -> str:
    """The closing lines of ``list``: how many bugs, distinct upstream references, and bugs per area."""
    bugs = {(case.id, bug.id): (case, bug) for case in cases for bug in case.known_bugs}
    refs = {ref for _case, bug in bugs.values() for ref in bug.upstream.links()}
    unfiled = sum(1 for _case, bug in bugs.values() if not bug.upstream.links())
    areas = ", ".join(f"{area} {sum(1 for case, _bug in bugs.values() if area in case.tags)}" for area in AREAS)
    return (f"{len(cases)} cases, {len(bugs)} known bugs: {len(refs)} distinct upstream issues/PRs, "
            f"{unfiled} bugs with none filed\nknown bugs per area: {areas}")


def _check(cases: list[Any]) -> int:
    """``list --check``: a versions header, one line per case, the summary line; exit 1 on a bad verdict."""
    from . import versions
    from .schema import Case
    from .verdicts import ACTIONS, Verdict

    print(f"peft-edges: {versions.describe()}")
    counts = {verdict: 0 for verdict in Verdict}
    malformed = 0
    for case in cases:
        if not isinstance(case, Case):
            malformed += 1
            print(f"{case.id}: MALFORMED — {case.error}")
            continue
        verdict, message = run_one(case)
        counts[verdict] += 1
        print(f"{case.id}: {verdict.value}" + ("" if verdict is Verdict.FIXED else f" — {message}"))
    stack = versions.stack()
    print(f"peft-edges: peft {stack['peft']}, transformers {stack['transformers']}, torch {stack['torch']} — "
          f"{sum(counts.values())} cases: {counts[Verdict.FIXED]} fixed, {counts[Verdict.REPRODUCED]} reproduced, "
          f"{counts[Verdict.REGRESSED]} regressed, {counts[Verdict.RANGE_WRONG]} range-wrong, "
          f"{counts[Verdict.ERROR]} errors" + (f", {counts[Verdict.SKIPPED]} skipped" if counts[Verdict.SKIPPED] else "")
          + (f", {malformed} malformed" if malformed else ""))
    bad = malformed or any(counts[verdict] for verdict in Verdict if ACTIONS[verdict].bad)
    return 1 if bad else 0


def run_one(case: Any) -> tuple[Any, str]:
    """Run ``case`` on the installed versions in a temporary directory: ``(Verdict, message)``."""
    from .engine import judge, not_applicable, run_case
    from .offline import enforce_offline
    from .verdicts import Verdict

    enforce_offline()  # this command's own process: the tiny models are built from config
    reason = not_applicable(case)
    if reason is not None:
        return Verdict.SKIPPED, f"not applicable: {reason}"
    with tempfile.TemporaryDirectory(prefix="peft-edges-") as workdir:
        judgement = judge(case, run_case(case, Path(workdir)))
    return judgement.verdict, judgement.message


def env_block() -> str:
    """A copy-paste block of the environment, like ``transformers env``."""
    import importlib.metadata as metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    lines = [f"- Platform: {platform.platform()}", f"- Python version: {platform.python_version()}"]
    torch_version = version("torch")
    device = "not installed"
    if torch_version != "not installed":
        import torch

        device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    lines.append(f"- PyTorch version: {torch_version} (device: {device})")
    for name in ("transformers", "peft", "accelerate", "safetensors", "huggingface_hub"):
        lines.append(f"- {name} version: {version(name)}")
    lines.append(f"- pytest-peft-edges version: {__version__}")
    return "\n".join(lines)


def cmd_env(args: argparse.Namespace) -> int:
    print(env_block())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import render_issue, render_script

    case = find_case(args.case_id, args.cases)
    if args.format == "script":
        text = render_script(case)
    else:
        from .engine import judge, not_applicable, run_case
        from .offline import enforce_offline

        enforce_offline()  # this command's own process: the tiny models are built from config
        judgement = None
        if not_applicable(case) is None:
            with tempfile.TemporaryDirectory(prefix="peft-edges-") as workdir:
                judgement = judge(case, run_case(case, Path(workdir)))
        text = render_issue(case, env_block(), judgement)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from .matrix import build_table, load_reports, write_table

    reports = [Path(p) for p in args.reports]
    missing = [str(p) for p in reports if not p.is_file()]
    if missing:
        raise UsageError(f"no such report: {', '.join(missing)}")
    try:
        table = build_table(load_reports(reports))
        markdown = write_table(table, json_path=args.json, markdown=args.markdown, readme=args.readme)
    except (ValueError, json.JSONDecodeError) as exc:
        raise UsageError(str(exc)) from None
    if not (args.json or args.markdown or args.readme):
        print(markdown)
    if table["bad"]:
        print(f"peft-edges: {table['bad']} regressed/range-wrong/error cell(s)", file=sys.stderr)
        return 1
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from .docs import render

    if args.output:
        Path(args.output).write_text(render())
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(render())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="peft-edges", description="Known PEFT edge-case bugs: list, check, export, tabulate.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = sub.add_parser("list", help="list the cases with their upstream links and affected ranges")
    listing.add_argument("--check", action="store_true", help="also run each case and print its verdict")
    listing.add_argument("--cases", action="append", default=[], metavar="PATH",
                         help="YAML cases to list/check (alone: only these; add --catalogue for the bundled ones)")
    listing.add_argument("--catalogue", action="store_true", help="include the bundled catalogue beside --cases")
    listing.set_defaults(func=cmd_list)

    env = sub.add_parser("env", help="print the environment block for a bug report")
    env.set_defaults(func=cmd_env)

    export = sub.add_parser("export", help="export a case as a standalone script or an upstream issue")
    export.add_argument("case_id")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.add_argument("--format", choices=("script", "issue"), default="script")
    export.add_argument("--cases", action="append", default=[], metavar="PATH", help="extra YAML cases")
    export.set_defaults(func=cmd_export)

    table = sub.add_parser("table", help="merge --peft-edges-report JSON files into a compatibility table")
    table.add_argument("reports", nargs="+", metavar="REPORT.json")
    table.add_argument("--markdown", metavar="FILE", help="write the markdown table here")
    table.add_argument("--json", metavar="FILE", help="write the table as JSON here")
    table.add_argument("--readme", metavar="FILE", help="replace the table between the markers in this file")
    table.set_defaults(func=cmd_table)
    docs = sub.add_parser("docs", help="print the case-format reference (docs/cases.md)")
    docs.add_argument("-o", "--output", metavar="FILE")
    docs.set_defaults(func=cmd_docs)
    from .releases.cli import add_subcommands as add_release_subcommands  # sweep, bisect

    add_release_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"peft-edges: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `peft-edges list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
