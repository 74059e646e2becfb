"""Verdicts as pytest outcomes, report sections, the terminal summary line and the JSON report.

Per-case results travel in ``report.user_properties`` so they survive pytest-xdist; the summary and
the JSON file are written only on the controller.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, NoReturn

import pytest

from . import versions
from .collection import bundled_cases_dir
from .verdicts import ACTIONS, Verdict

PROPERTY = "peft_edges"
_SECTION = pytest.StashKey[str]()


def fixed_in(bug: Any) -> str | None:
    """The first peft release outside the bug's recorded range (its upper bound), or None while the range
    is open upstream. ``<0.11`` gives ``0.11``; ``<=0.10.0`` gives ``> 0.10.0``."""
    spec = getattr(bug, "affected", {}).get("peft")
    if not spec:
        return None
    try:
        specifiers = versions.parse_specifier(spec)
    except ValueError:
        return None
    uppers = [(s.version, s.operator) for s in specifiers if s.operator in ("<", "<=")]
    if not uppers:
        return None
    from packaging.version import Version

    version, operator = min(uppers, key=lambda pair: Version(pair[0]))
    return version if operator == "<" else f"> {version}"


def bug_info(bug: Any) -> dict[str, Any]:
    """What a downstream CI needs about a known bug: id, summary, range, upstream links, first fix."""
    return {"id": bug.id, "summary": bug.summary, "range": bug.range_label(), "upstream": bug.upstream.links(),
            "fixed_in": fixed_in(bug)}


def advice(info: dict[str, Any]) -> str:
    fixed = info.get("fixed_in")
    if not fixed:
        return "open upstream"
    return f"upgrade to peft {fixed}" if fixed.startswith(">") else f"upgrade to peft >= {fixed}"


def record(item: pytest.Item, *, case_id: str, verdict: str, message: str, upstream: list[str],
           duration_s: float = 0.0, step: str | None = None, bug: str | None = None,
           affecting: list[dict[str, Any]] | None = None, case_path: str | None = None) -> None:
    """Attach the verdict of ``item`` as a user property and prepare its report section.

    The ``export:`` hint is a command that works as printed: a case outside the bundled catalogue
    (``case_path``) is named with ``--cases``; a malformed case (no ``case_path``, verdict error at
    collection) gets no hint."""
    entry = {"id": case_id, "upstream": upstream, "verdict": verdict, "duration_s": round(duration_s, 4),
             "message": message, "step": step, "bug": bug, "bugs": affecting or [],
             "fixed_in": next((b["fixed_in"] for b in affecting or [] if b["id"] == bug), None)}
    item.user_properties.append((PROPERTY, entry))
    lines = [
        f"case:      {case_id}",
        f"upstream:  {', '.join(upstream) or 'no upstream issue'}",
        f"installed: {versions.describe()}",
        f"verdict:   {verdict}",
        f"failed at: {step or '-'}",
        f"message:   {message}",
    ]
    for info in affecting or []:
        if info["id"] == bug:
            lines.append(f"fix:       {advice(info)} (known bug {bug}: {info['range']})")
    if case_path is not None:
        bundled = Path(case_path).resolve().is_relative_to(bundled_cases_dir().resolve())
        where = "" if bundled else f" --cases {shlex.quote(case_path)}"
        lines.append(f"export:    peft-edges export {case_id}{where} --format issue")
    item.stash[_SECTION] = "\n".join(lines)


def add_section(item: pytest.Item, report: pytest.TestReport) -> None:
    """Put the case's verdict section on a failed or xfailed report."""
    text = item.stash.get(_SECTION, None)
    if text is None or not (report.failed or hasattr(report, "wasxfail") or report.skipped):
        return
    if all(name != "peft-edges" for name, _ in report.sections):
        report.sections.append(("peft-edges", text))


def judge_and_act(item: pytest.Item, case: Any, workdir: Path, known_mode: str, export_dir: Path | None = None,
                  accepted: frozenset[str] | None = None) -> None:
    """Run ``case`` and map the verdict to a pytest outcome (``known_mode``: xfail | fail | skip).

    With ``accepted`` (the ``peft_edges_accept`` policy), a reproduced bug in it is an xfail and any
    other reproduced bug a failure, whatever ``known_mode`` says.
    """
    from .engine import judge, not_applicable, run_case

    stack = versions.stack()
    in_range = case.bugs_in_range(stack)
    affecting = [bug_info(bug) for bug in in_range]
    upstream = _links(case.upstream.links(), *(info["upstream"] for info in affecting))
    reason = not_applicable(case, stack)
    if reason is not None:
        message = f"not applicable: {reason}"
        record(item, case_id=case.id, verdict="skipped", message=message, upstream=upstream, case_path=case.path)
        pytest.skip(message)
    if known_mode == "skip" and in_range and (accepted is None or in_range[0].id in accepted):
        message = f"known bug {in_range[0].id} affects {versions.describe(stack)}"
        record(item, case_id=case.id, verdict="skipped", message=message, upstream=upstream, affecting=affecting, case_path=case.path)
        pytest.skip(message)
    outcome = run_case(case, workdir, stack)
    verdict = judge(case, outcome, stack)
    step = verdict.failure.at if verdict.failure else None
    if verdict.bug is not None:  # the reproduced bug's own links come first
        upstream = _links(case.upstream.links(), verdict.bug.upstream.links(), upstream)
        if all(info["id"] != verdict.bug.id for info in affecting):
            affecting.append(bug_info(verdict.bug))
    record(item, case_id=case.id, verdict=verdict.name, message=verdict.message, upstream=upstream,
           duration_s=outcome.duration_s, step=step, bug=verdict.bug.id if verdict.bug else None, affecting=affecting,
           case_path=case.path)
    action = ACTIONS[verdict.verdict]
    if action.pytest == "pass":
        return
    if export_dir is not None:
        from .export import render_script

        export_dir.mkdir(parents=True, exist_ok=True)
        (export_dir / f"{case.id}.py").write_text(render_script(case))
    if action.pytest == "known":
        bug_id = verdict.bug.id if verdict.bug else None
        if accepted is not None:
            if bug_id in accepted:
                _xfail(f"[reproduced, accepted] {verdict.message}")
            pytest.fail(f"[reproduced, not in peft_edges_accept] {verdict.message}", pytrace=False)
        if known_mode == "fail":
            pytest.fail(f"[{verdict.name}] {verdict.message}", pytrace=False)
        _xfail(f"[{verdict.name}] {verdict.message}")
    detail = f"\n  (raised in {verdict.failure.where})" if verdict.failure is not None and verdict.failure.where else ""
    pytest.fail(f"[{verdict.name}] {verdict.message}{detail}", pytrace=False)


def _xfail(message: str) -> NoReturn:
    """``pytest.xfail(message)`` without a traceback, as pytest's own skipping plugin raises it: with one,
    pytest formats the frames of every reproduced bug (parsing each frame's source file) for a report that
    shows only the reason. That was a quarter of a catalogue run with 50 reproduced bugs (measured)."""
    raise pytest.xfail.Exception(message, pytrace=False)


def _links(*groups: list[str]) -> list[str]:
    seen: list[str] = []
    for group in groups:
        for link in group:
            if link not in seen:
                seen.append(link)
    return seen


class VerdictReporter:
    """Collects the verdicts of a run; writes the summary line and the JSON report on the controller."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == PROPERTY:
                self.results[report.nodeid] = dict(value)

    def _is_controller(self) -> bool:
        return not hasattr(self.config, "workerinput")

    def counts(self) -> dict[str, int]:
        counts = {verdict.value: 0 for verdict in Verdict}
        for entry in self.results.values():
            counts[entry["verdict"]] = counts.get(entry["verdict"], 0) + 1
        return counts

    def summary_line(self) -> str:
        stack = versions.stack()
        counts = self.counts()
        return (f"peft-edges: peft {stack['peft']}, transformers {stack['transformers']}, torch {stack['torch']}"
                f" — {len(self.results)} cases: {counts['fixed']} fixed, {counts['reproduced']} reproduced, "
                f"{counts['regressed']} regressed, {counts['range-wrong']} range-wrong, {counts['error']} errors"
                + (f", {counts['skipped']} skipped" if counts["skipped"] else ""))

    def affecting_bugs(self) -> dict[str, dict[str, Any]]:
        """Every known bug whose range holds the installed versions, with the cases that carry it."""
        bugs: dict[str, dict[str, Any]] = {}
        for entry in sorted(self.results.values(), key=lambda e: e["id"]):
            for info in entry.get("bugs", []):
                bug = bugs.setdefault(info["id"], {**info, "cases": []})
                if entry["id"] not in bug["cases"]:
                    bug["cases"].append(entry["id"])
        return dict(sorted(bugs.items()))

    def bug_lines(self) -> list[str]:
        lines = []
        for bug_id, info in self.affecting_bugs().items():
            link = info["upstream"][0] if info["upstream"] else "no upstream issue"
            lines.append(f"{bug_id}: {info['summary']} — case {', '.join(info['cases'])} — {info['range']} — "
                         f"{advice(info)} — {link}")
        return lines

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self._is_controller() and self.results:
            lines = self.bug_lines()
            if lines:
                terminalreporter.write_sep("-", "peft-edges: known bugs affecting the installed versions")
                for line in lines:
                    terminalreporter.write_line(line)
            terminalreporter.write_sep("-", "peft-edges")
            terminalreporter.write_line(self.summary_line())

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        target = self.config.option.peft_edges_report
        if not target or not self._is_controller():
            return
        import platform

        from . import __version__

        cases = sorted(self.results.values(), key=lambda entry: entry["id"])
        document = {"versions": versions.stack(), "cases": cases, "bugs": self.affecting_bugs(),
                    "environment": {"python": platform.python_version(), "platform": platform.platform(),
                                    "pytest_peft_edges": __version__, "pytest": pytest.__version__}}
        path = Path(target)
        if not path.is_absolute():
            path = Path(self.config.invocation_params.dir) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
