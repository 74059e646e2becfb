"""The case engine through pytest, as a user runs it: verdicts, known-bug modes, JSON report, xdist, -k."""

from __future__ import annotations

import json

import pytest

from conftest import EXAMPLES

pytest.importorskip("peft")

# A check that fails on every release: an untrained LoRA adapter leaves the output unchanged.
NO_OP = """
id: {id}
title: t
model: {{architecture: bert}}
steps:
  - {{op: snapshot, model: base, as: out_base}}
  - {{op: get_peft_model, config: {{r: 2, target_modules: [query]}}}}
{extra}
  - {{op: snapshot, as: out_peft}}
expect:
  - {{id: changes-output, check: differ, a: out_peft, b: out_base}}
known_bugs:
  - id: bug-x
    affected: {{peft: '{range}'}}
    fails: {fails}
"""
ALWAYS, NEVER = ">=0", "<0.0.1"
CHECK_FAILS = "{check: changes-output, match: 'no effect'}"
PERTURB = "  - {op: perturb, seed: 1}"


def case(id: str, range: str = ALWAYS, extra: str = "", fails: str = CHECK_FAILS) -> str:
    return NO_OP.format(id=id, range=range, extra=extra, fails=fails)


def verdicts(path) -> dict[str, str]:
    return {entry["id"]: entry["verdict"] for entry in json.loads(path.read_text())["cases"]}


@pytest.fixture
def six_cases(write_case):
    write_case("reproduced.yaml", case("reproduced"))
    write_case("fixed.yaml", case("fixed", NEVER, PERTURB))
    write_case("range-wrong.yaml", case("range-wrong", ALWAYS, PERTURB))
    write_case("regressed.yaml", case("regressed", NEVER))
    write_case("other-failure.yaml", case("other-failure", fails="{check: changes-output, match: 'something else'}"))
    write_case("unexpected.yaml", case("unexpected", NEVER, "  - {op: set_adapter, adapter_name: nope}"))


def test_every_verdict(pytester, six_cases):
    result = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases",
                                "--peft-edges-report", "report.json", "-rfExX")
    result.assert_outcomes(passed=1, xfailed=1, failed=4)
    assert verdicts(pytester.path / "report.json") == {
        "fixed": "fixed", "reproduced": "reproduced", "range-wrong": "range-wrong", "regressed": "regressed",
        "other-failure": "error", "unexpected": "error",
    }
    result.stdout.fnmatch_lines([
        "*peft-edges: peft *, transformers *, torch * — 6 cases: 1 fixed, 1 reproduced, 1 regressed, "
        "1 range-wrong, 2 errors",
    ])
    out = result.stdout.str()
    assert "[range-wrong] known bug bug-x" in out and "its recorded range is wrong" in out
    assert "[error] failed another way than recorded" in out
    assert "[error] unexpected exception at 'set_adapter': ValueError" in out
    # the hint works as printed: a user case is exported with its --cases path
    assert "export:    peft-edges export regressed --cases " in out and "regressed.yaml --format issue" in out


def test_json_report_fields(pytester, write_case):
    write_case("reproduced.yaml", case("reproduced"))
    pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases", "--peft-edges-report", "out/r.json")
    document = json.loads((pytester.path / "out" / "r.json").read_text())
    assert set(document["versions"]) >= {"peft", "transformers", "torch"}
    (entry,) = document["cases"]
    assert entry["verdict"] == "reproduced" and entry["step"] == "changes-output"
    assert set(entry) >= {"id", "upstream", "verdict", "duration_s", "message"}
    assert entry["duration_s"] > 0


@pytest.mark.parametrize(("mode", "outcome", "verdict"), [
    ("xfail", {"xfailed": 1}, "reproduced"),
    ("fail", {"failed": 1}, "reproduced"),
    ("skip", {"skipped": 1}, "skipped"),
])
def test_known_mode(pytester, write_case, mode, outcome, verdict):
    write_case("reproduced.yaml", case("reproduced"))
    result = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases", f"--peft-edges-known={mode}",
                                "--peft-edges-report", "r.json")
    result.assert_outcomes(**outcome)
    assert verdicts(pytester.path / "r.json") == {"reproduced": verdict}


def test_a_reproduced_bug_reports_its_verdict_not_the_plugins_traceback(pytester, write_case):
    """A reproduced bug's xfail report holds the verdict, not a traceback through the plugin's frames:
    what report consumers (junitxml, report-log, -rx) read. Formatting that traceback (pytest parses each
    frame's source file) for every reproduced bug was a quarter of a catalogue run."""
    write_case("reproduced.yaml", case("reproduced"))
    reprec = pytester.inline_run("-p", "peft_edges", "--peft-edges-cases", "cases")
    (report,) = [r for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"]
    message = ("[reproduced] known bug bug-x reproduced (no upstream issue): at 'changes-output': check failed: "
               "out_peft equals out_base within 1e-06: the adapter had no effect")
    assert report.skipped and report.wasxfail.endswith(message)  # pytest 8.0 prefixes 'reason: '
    assert str(report.longrepr) == message


def test_known_mode_from_ini(pytester, write_case):
    write_case("reproduced.yaml", case("reproduced"))
    pytester.makeini("[pytest]\npeft_edges_known = fail\npeft_edges_cases = cases\n")
    pytester.runpytest("-p", "peft_edges").assert_outcomes(failed=1)


def test_k_selects_by_case_id(pytester, six_cases):
    result = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases", "-k", "fixed or reproduced")
    result.assert_outcomes(passed=1, xfailed=1)


def test_cases_are_added_to_explicit_test_paths(pytester, write_case):
    write_case("reproduced.yaml", case("reproduced"))
    pytester.makepyfile(test_own="def test_own(): pass")
    result = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases", "test_own.py")
    result.assert_outcomes(passed=1, xfailed=1)


def test_xdist_gives_the_same_verdicts(pytester, six_cases, isolated_env):
    pytest.importorskip("xdist")
    serial = pytester.runpytest_subprocess("-p", "peft_edges", "--peft-edges-cases", "cases",
                                           "--peft-edges-report", "serial.json")
    parallel = pytester.runpytest_subprocess("-p", "peft_edges", "-p", "xdist", "-n", "2", "--peft-edges-cases",
                                             "cases", "--peft-edges-report", "parallel.json")
    parallel.assert_outcomes(passed=1, xfailed=1, failed=4)
    assert verdicts(pytester.path / "parallel.json") == verdicts(pytester.path / "serial.json")
    assert len(verdicts(pytester.path / "parallel.json")) == 6
    parallel.stdout.fnmatch_lines(["*6 cases: 1 fixed, 1 reproduced, 1 regressed, 1 range-wrong, 2 errors*"])
    assert "[gw" not in serial.stdout.str()


def test_example_cases_in_the_repo(pytester):
    result = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", str(EXAMPLES), "--peft-edges-report", "r.json")
    result.assert_outcomes(passed=1, xfailed=1)
    assert verdicts(pytester.path / "r.json") == {
        "example-lora-round-trip": "fixed", "example-untrained-adapter-is-a-no-op": "reproduced"}


def test_a_case_directory_without_cases_is_an_error_not_an_empty_run(pytester):
    (pytester.path / "empty").mkdir()
    result = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "empty", "-rE")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*empty:0: path: is a directory without *.yaml/*.yml case files*"])


def test_step_when_and_expected_raise(pytester, write_case):
    write_case("when.yaml", """
        id: gated
        title: t
        model: {architecture: bert}
        steps:
          - {op: get_peft_model, config: {r: 2, target_modules: [query]}}
          - {op: set_adapter, adapter_name: nope, when: {peft: '<0.0.1'}}
          - op: set_adapter
            adapter_name: nope
            raises: {type: ValueError, match: 'nope'}
        expect:
          - {check: adapters, present: [default], absent: [nope], active: default}
          - {check: value, of: peft.active_adapter, equals: default}
    """)
    pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases").assert_outcomes(passed=1)


def test_last_failed_reruns_only_the_failed_cases(pytester, six_cases):
    pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases").assert_outcomes(passed=1, xfailed=1, failed=4)
    rerun = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases", "--lf")
    rerun.assert_outcomes(failed=4)
    assert "cases/fixed.yaml::fixed" not in rerun.stdout.str() and "cases/regressed.yaml::regressed" in rerun.stdout.str()
