"""What a downstream CI needs to act on a known bug (issue 16), on a stub catalogue with stub ranges:
the end-of-run list, upstream links and first fixes in the report, tag and bug selection, the accept
policy, and the ``peft_edges_bug`` marker for the user's own tests."""

from __future__ import annotations

import json
import textwrap

import pytest

pytest.importorskip("peft")

# A fixed case whose bug's range excludes every release, and two cases whose bug holds every release.
UNTRAINED = """
    model: {{architecture: bert, head: seq_cls, seed: 0}}
    steps:
      - {{op: snapshot, model: base, as: out_base}}
      - {{op: get_peft_model, config: {{r: 4, target_modules: [query, value]}}}}
      - {{op: snapshot, as: out_peft}}
    expect:
      - {{id: adapter-changes-output, check: differ, a: out_peft, b: out_base}}
    known_bugs:
      - id: {bug}
        summary: {summary}
        affected: {{peft: '{range}'}}
        {upstream}fails: {{check: adapter-changes-output, match: 'the adapter had no effect'}}
"""

STUBS = {
    "stub-fixed.yaml": "id: stub-fixed\ntitle: t\ntags: [alpha]\n" + textwrap.dedent("""
        model: {architecture: bert, head: seq_cls, seed: 0}
        steps:
          - {op: get_peft_model, config: {r: 4, target_modules: [query]}}
        known_bugs:
          - id: STUB-OLD
            summary: an old stub bug
            affected: {peft: '<0.0.1'}
            fails: {step: get_peft_model, raises: ValueError, match: 'never'}
    """),
    "stub-open.yaml": "id: stub-open\ntitle: t\ntags: [beta]\n" + textwrap.dedent(UNTRAINED.format(
        bug="STUB-OPEN", summary="a stub bug open upstream", range=">=0", upstream="upstream: {issues: [1234]}\n        ")),
    "stub-later.yaml": "id: stub-later\ntitle: t\ntags: [beta, gamma]\n" + textwrap.dedent(UNTRAINED.format(
        bug="STUB-LATER", summary="a stub bug fixed in a future release", range=">=0,<99",
        upstream="upstream: {issues: [4321]}\n        ")),
}


@pytest.fixture
def stubs(pytester):
    cases = pytester.path / "cases"
    cases.mkdir()
    for name, text in STUBS.items():
        (cases / name).write_text(text)
    return cases


def run(pytester, *args):
    return pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases", *args)


def test_the_run_ends_with_the_bugs_that_affect_the_installed_versions(pytester, stubs):
    result = run(pytester)
    result.assert_outcomes(passed=1, xfailed=2)
    result.stdout.fnmatch_lines([
        "*peft-edges: known bugs affecting the installed versions*",
        "STUB-LATER: a stub bug fixed in a future release — case stub-later — peft >=0,<99 — upgrade to peft >= 99"
        " — https://github.com/huggingface/peft/issues/4321",
        "STUB-OPEN: a stub bug open upstream — case stub-open — peft >=0 — open upstream"
        " — https://github.com/huggingface/peft/issues/1234",
        "*peft-edges*",
        "peft-edges: peft *3 cases: 1 fixed, 2 reproduced*",
    ])
    assert "STUB-OLD" not in result.stdout.str()


def test_the_list_is_quiet_when_nothing_affects_the_installed_versions(pytester, stubs):
    result = run(pytester, "cases/stub-fixed.yaml")
    result.assert_outcomes(passed=1)
    assert "known bugs affecting" not in result.stdout.str()


def test_the_reproduced_bugs_own_links_and_fix_reach_the_section_and_the_json(pytester, stubs):
    result = run(pytester, "--peft-edges-known=fail", "--peft-edges-report", "r.json", "cases/stub-later.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "upstream:  https://github.com/huggingface/peft/issues/4321",
        "fix:       upgrade to peft >= 99 (known bug STUB-LATER: peft >=0,<99)",
    ])
    report = json.loads((pytester.path / "r.json").read_text())
    (case,) = report["cases"]
    assert case["upstream"] == ["https://github.com/huggingface/peft/issues/4321"]
    assert case["bug"] == "STUB-LATER" and case["fixed_in"] == "99"
    assert report["bugs"]["STUB-LATER"]["fixed_in"] == "99"
    assert report["bugs"]["STUB-LATER"]["cases"] == ["stub-later"]
    assert set(report["environment"]) == {"python", "platform", "pytest_peft_edges", "pytest"}


def test_cases_are_selected_by_tag_and_by_bug_id(pytester, stubs):
    by_tag = run(pytester, "--peft-edges-tag", "beta", "--co", "-q")
    assert [line for line in by_tag.stdout.lines if "::" in line] == [
        "cases/stub-later.yaml::stub-later", "cases/stub-open.yaml::stub-open"]
    by_bug = run(pytester, "--peft-edges-bug", "STUB-OLD", "--co", "-q")
    assert [line for line in by_bug.stdout.lines if "::" in line] == ["cases/stub-fixed.yaml::stub-fixed"]
    both = run(pytester, "--peft-edges-tag", "beta", "--peft-edges-bug", "STUB-OPEN", "--co", "-q")
    assert [line for line in both.stdout.lines if "::" in line] == ["cases/stub-open.yaml::stub-open"]


@pytest.mark.parametrize("option, message", [
    ("--peft-edges-tag=delta", "unknown peft-edges tag: delta (known: alpha, beta, gamma)"),
    ("--peft-edges-bug=NOPE", "unknown peft-edges bug id: NOPE (known: STUB-LATER, STUB-OLD, STUB-OPEN)"),
])
def test_an_unknown_tag_or_bug_id_is_a_usage_error(pytester, stubs, option, message):
    result = run(pytester, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_accepted_bugs_xfail_and_every_other_affecting_bug_fails(pytester, stubs):
    pytester.makeini("[pytest]\npeft_edges_accept = STUB-OPEN\n")
    result = run(pytester, "-rxf")
    result.assert_outcomes(passed=1, xfailed=1, failed=1)
    result.stdout.fnmatch_lines([
        "XFAIL cases/stub-open.yaml::stub-open - *[[]reproduced, accepted[]]*",
        "FAILED cases/stub-later.yaml::stub-later - Failed: [[]reproduced, not in peft_e*",
    ])


def test_an_unknown_accepted_bug_id_is_a_usage_error(pytester, stubs):
    pytester.makeini("[pytest]\npeft_edges_accept = STUB-OPEN TYPO\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: unknown peft-edges bug id: TYPO (known: *)"])


MARKED = """
import pytest

@pytest.mark.peft_edges_bug("STUB-OPEN")
def test_hits_an_open_bug():
    assert False, "the bug"

@pytest.mark.peft_edges_bug("STUB-OLD")
def test_outside_the_range_runs_normally():
    pass

@pytest.mark.peft_edges_bug("STUB-LATER", strict=True)
def test_strict_passes_unexpectedly():
    pass
"""


def test_the_marker_xfails_a_users_test_where_the_bug_applies(pytester, stubs):
    pytester.makeini("[pytest]\npeft_edges_cases = cases\n")
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest("-p", "peft_edges", "test_marked.py", "-rxXf")
    result.assert_outcomes(passed=1, xfailed=1, failed=1)
    result.stdout.fnmatch_lines([
        "[[]XPASS(strict)[]] known peft bug STUB-LATER (a stub bug fixed in a future release) affects"
        " peft >=0,<99: upgrade to peft >= 99 — https://github.com/huggingface/peft/issues/4321",
        "XFAIL test_marked.py::test_hits_an_open_bug - *known peft bug STUB-OPEN (a stub bug open upstream) affects"
        " peft >=0: open upstream — https://github.com/huggingface/peft/issues/1234",
        "FAILED test_marked.py::test_strict_passes_unexpectedly*",
    ])


def test_an_unknown_marker_bug_id_is_a_usage_error(pytester, stubs):
    pytester.makeini("[pytest]\npeft_edges_cases = cases\n")
    pytester.makepyfile(test_marked='import pytest\n\n@pytest.mark.peft_edges_bug("S404")\ndef test_x(): pass\n')
    result = pytester.runpytest("-p", "peft_edges", "test_marked.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: unknown peft-edges bug id: S404 (known: *)"])
