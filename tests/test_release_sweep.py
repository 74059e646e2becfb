"""The real release sweep: every case on every peft release of the index, and a real bisect of case D.

Slow and online (uv installs the environments and releases from the package index), so it runs only in
`tox -e sweep`, which sets PEFT_EDGES_SWEEP_CACHE (environments, releases) and PEFT_EDGES_SWEEP_REPORTS.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_peft_edges import cli
from pytest_peft_edges.plugin import bundled_cases_dir
from pytest_peft_edges.releases.envs import Store
from pytest_peft_edges.releases.index import load_index
from pytest_peft_edges.releases.sweep import describe, plan, sweep

CACHE = os.environ.get("PEFT_EDGES_SWEEP_CACHE")
pytestmark = pytest.mark.skipif(not CACHE, reason="the release sweep runs in `tox -e sweep` (PEFT_EDGES_SWEEP_CACHE)")


def test_every_case_agrees_with_its_recorded_ranges_on_every_release(tmp_path):
    reports = Path(os.environ.get("PEFT_EDGES_SWEEP_REPORTS") or tmp_path)
    result = sweep(plan(load_index()), reports, store=Store(Path(CACHE), log=print), jobs=2, log=print)
    print(f"sweep: {len(result.runs)} runs in {result.seconds:.1f} s")
    assert len(result.runs) == len(load_index().peft) + len(load_index().boundary)
    wrong = [describe(run) for run in result.runs if run.error or run.bad()]
    assert not wrong, "\n".join(wrong)


def test_bisect_finds_where_bug_d_starts_and_ends(tmp_path, capsys):
    """Bisect a copy of case D with its range as recorded before the sweep (`<0.18.0`)."""
    text = (bundled_cases_dir() / "weighted-adapter-arithmetic.yaml").read_text()
    assert "affected: {peft: '>=0.7.0,<0.18.0'}" in text
    old = tmp_path / "d.yaml"
    old.write_text(text.replace("affected: {peft: '>=0.7.0,<0.18.0'}", "affected: {peft: '<0.18.0'}"))
    code = cli.main(["bisect", "weighted-adapter-negative-weight-linear", "--cases", str(old), "--cache", CACHE])
    out = capsys.readouterr().out
    print(out)
    assert code == 1
    segments = [line.split("(run on")[0].split() for line in out.splitlines() if line.startswith("  peft ")]
    assert segments == [["peft", "0.6.2", "fixed"], ["peft", "0.7.0", "...", "0.17.1", "D-math-domain"],
                        ["peft", "0.18.0", "...", "0.18.1", "D-sign-dropped"], ["peft", "0.19.0", "...", "0.21.2", "fixed"]]
    assert ("known bug D-math-domain:\n  found:    >=0.7.0,<0.18.0 (first affected 0.7.0, first fixed 0.18.0)\n"
            "  recorded: peft <0.18.0\n  the recorded range is WRONG: it includes 0.6.2, where the case does not show the bug") in out
    assert ("known bug D-sign-dropped:\n  found:    >=0.18.0,<0.19.0 (first affected 0.18.0, first fixed 0.19.0)\n"
            "  recorded: peft >=0.18.0,<0.19.0\n  the recorded range is right on every release of the window") in out
