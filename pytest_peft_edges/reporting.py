"""Verdicts as pytest outcomes, report sections, the terminal summary line and the JSON report.

Per-case results travel in ``report.user_properties`` so they survive pytest-xdist; the summary and
the JSON file are written only on the controller.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from . import versions
from .verdicts import ACTIONS, Verdict

PROPERTY = "peft_edges"
_SECTION = pytest.StashKey[str]()


def record(item: pytest.Item, *, case_id: str, verdict: str, message: str, upstream: list[str],
           duration_s: float = 0.0, step: str | None = None, bug: str | None = None) -> None:
    """Attach the verdict of ``item`` as a user property and prepare its report section."""
    entry = {"id": case_id, "upstream": upstream, "verdict": verdict, "duration_s": round(duration_s, 4),
             "message": message, "step": step, "bug": bug}
    item.user_properties.append((PROPERTY, entry))
    lines = [
        f"case:      {case_id}",
        f"upstream:  {', '.join(upstream) or 'no upstream issue'}",
        f"installed: {versions.describe()}",
        f"verdict:   {verdict}",
        f"failed at: {step or '-'}",
        f"message:   {message}",
        f"export:    peft-edges export {case_id} --format issue",
    ]
    item.stash[_SECTION] = "\n".join(lines)


def add_section(item: pytest.Item, report: pytest.TestReport) -> None:
    """Put the case's verdict section on a failed or xfailed report."""
    text = item.stash.get(_SECTION, None)
    if text is None or not (report.failed or hasattr(report, "wasxfail") or report.skipped):
        return
    if all(name != "peft-edges" for name, _ in report.sections):
        report.sections.append(("peft-edges", text))


def judge_and_act(item: pytest.Item, case: Any, workdir: Path, known_mode: str, export_dir: Path | None = None) -> None:
    """Run ``case`` and map the verdict to a pytest outcome (``known_mode``: xfail | fail | skip)."""
    from .engine import judge, not_applicable, run_case

    stack = versions.stack()
    upstream = case.upstream.links()
    in_range = case.bugs_in_range(stack)
    reason = not_applicable(case, stack)
    if reason is not None:
        message = f"not applicable: {reason}"
        record(item, case_id=case.id, verdict="skipped", message=message, upstream=upstream)
        pytest.skip(message)
    if known_mode == "skip" and in_range:
        message = f"known bug {in_range[0].id} affects {versions.describe(stack)}"
        record(item, case_id=case.id, verdict="skipped", message=message, upstream=upstream)
        pytest.skip(message)
    outcome = run_case(case, workdir, stack)
    verdict = judge(case, outcome, stack)
    step = verdict.failure.at if verdict.failure else None
    record(item, case_id=case.id, verdict=verdict.name, message=verdict.message, upstream=upstream,
           duration_s=outcome.duration_s, step=step, bug=verdict.bug.id if verdict.bug else None)
    action = ACTIONS[verdict.verdict]
    if action.pytest == "pass":
        return
    if export_dir is not None:
        from .export import render_script

        export_dir.mkdir(parents=True, exist_ok=True)
        (export_dir / f"{case.id}.py").write_text(render_script(case))
    if action.pytest == "known":
        if known_mode == "fail":
            pytest.fail(f"[{verdict.name}] {verdict.message}", pytrace=False)
        pytest.xfail(f"[{verdict.name}] {verdict.message}")
    detail = f"\n  (raised in {verdict.failure.where})" if verdict.failure is not None and verdict.failure.where else ""
    pytest.fail(f"[{verdict.name}] {verdict.message}{detail}", pytrace=False)


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

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self._is_controller() and self.results:
            terminalreporter.write_sep("-", "peft-edges")
            terminalreporter.write_line(self.summary_line())

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        target = self.config.option.peft_edges_report
        if not target or not self._is_controller():
            return
        cases = sorted(self.results.values(), key=lambda entry: entry["id"])
        document = {"versions": versions.stack(), "cases": cases}
        path = Path(target)
        if not path.is_absolute():
            path = Path(self.config.invocation_params.dir) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
