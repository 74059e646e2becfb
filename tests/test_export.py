"""``peft-edges`` CLI and exported scripts: verdicts agree with the plugin, no injection, clean errors."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import EXAMPLES
from pytest_peft_edges import cli
from pytest_peft_edges.export import code_lines, render_script
from pytest_peft_edges.plugin import bundled_cases_dir
from pytest_peft_edges.schema import Case, load_cases
from pytest_peft_edges.verdicts import ACTIONS

pytest.importorskip("peft")

# Runs every script given on the command line in ONE interpreter (torch is imported once) and prints
# {path: [exit code, stdout]} as JSON.
DRIVER = textwrap.dedent("""
    import contextlib, io, json, runpy, sys
    results = {}
    for path in sys.argv[1:]:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                runpy.run_path(path, run_name="__main__")
            code = 0
        except SystemExit as exc:  # sys.exit("BUG REPRODUCED: ...") prints to stderr and exits 1
            code = exc.code if not isinstance(exc.code, str) else (out.write(exc.code + "\\n") and 1)
        results[path] = [code, out.getvalue()]
    print(json.dumps(results))
""")
EXIT_FOR_VERDICT = {verdict.value: action.exit_code for verdict, action in ACTIONS.items()}


def run_scripts(paths, cwd):
    proc = subprocess.run([sys.executable, "-c", DRIVER, *map(str, paths)], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_bundled_case_exports_and_its_script_agrees_with_the_plugin(pytester, tmp_path):
    pytester.runpytest("-p", "peft_edges", "--peft-edges", "--peft-edges-report", "r.json")
    verdicts = {c["id"]: c["verdict"] for c in json.loads((pytester.path / "r.json").read_text())["cases"]}
    cases = [c for c in load_cases([bundled_cases_dir()]) if isinstance(c, Case)]
    assert sorted(verdicts) == sorted(c.id for c in cases)
    scripts = []
    for case in cases:
        path = tmp_path / f"{case.id}.py"
        assert cli.main(["export", case.id, "-o", str(path)]) == 0
        ast.parse(path.read_text())
        assert "pytest_peft_edges" not in path.read_text().replace("pytest-peft-edges", "")
        scripts.append(path)
    results = run_scripts(scripts, tmp_path)
    for case in cases:
        code, out = results[str(tmp_path / f"{case.id}.py")]
        assert code == EXIT_FOR_VERDICT[verdicts[case.id]], (case.id, verdicts[case.id], out[-500:])
        if code == 1:
            assert "BUG REPRODUCED: " in out
    assert set(tmp_path.iterdir()) == set(scripts)  # the scripts wrote nothing beside themselves


HOSTILE = '''\
id: hostile-strings
title: "x\\"\\"\\" + __import__('os').system('touch PWNED') + \\"\\"\\"\\n import os; os.system('touch PWNED2')"
description: "line one\\r\\nimport os\\x0bos.system('touch PWNED3')\\u2028os.system('touch PWNED4')"
model: {architecture: bert}
steps:
  - {op: get_peft_model, adapter_name: ab_cd, config: {r: 2, target_modules: [query]}}
  - {op: perturb, model: peft, pattern: "lora_B\\\\.ab_cd|a'b\\"c\\\\\\\\d", seed: 1}
expect:
  - {check: adapters, present: [ab_cd]}
  - {check: value, of: peft.active_adapter, equals: ab_cd}
'''


SEED_CASES = ["seq-cls-set-adapter-second", "adapter-name-lora-round-trip", "merge-and-unload-key-mismatch-raw-state-dict",
              "merge-and-unload-key-mismatch-inner-model", "classifier-heads-tuner-set-adapter",
              "classifier-heads-weighted-merge", "all-linear-seq-cls-head-bert"]


def test_exported_scripts_stay_minimal():
    """A maintainer reads the script in thirty seconds: the seed cases (S1-S5) export to <= 80 code lines,
    every bundled case to <= 150; no engine is copied in."""
    cases = {c.id: c for c in load_cases([bundled_cases_dir()]) if isinstance(c, Case)}
    lengths = {case_id: code_lines(render_script(case)) for case_id, case in cases.items()}
    assert {case_id: lengths[case_id] for case_id in SEED_CASES if lengths[case_id] > 80} == {}
    assert {case_id: n for case_id, n in lengths.items() if n > 150} == {}
    script = render_script(cases["seq-cls-set-adapter-second"])
    for engine_word in ("Recorder", "def judge", "KnownBug", "set_order_renamings", "def main(N"):
        assert engine_word not in script
    # only what the case uses: no TinyMLP, no warnings capture, no optimizer in the S1 script
    assert "tiny_mlp" not in script and "warnings" not in script and "optimizer" not in script
    assert "transformers.BertConfig(vocab_size=99, hidden_size=32" in script  # the tiny model config inline


def test_exit_2_when_peft_cannot_be_imported(tmp_path):
    script = tmp_path / "s1.py"
    assert cli.main(["export", "seq-cls-set-adapter-second", "-o", str(script)]) == 0
    broken = tmp_path / "broken" / "peft"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('cannot import name HybridCache from transformers')\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "broken")})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ImportError: cannot import name HybridCache from transformers" in proc.stdout
    assert "CANNOT JUDGE: a step failed in a way no recorded bug explains" in proc.stdout


def test_yaml_strings_cannot_inject_code(pytester, tmp_path):
    (tmp_path / "hostile.yaml").write_text(HOSTILE)
    (case,) = load_cases([tmp_path / "hostile.yaml"])
    assert isinstance(case, Case), case
    # issue 15: adapter names are plain names now; quotes and backslashes travel in a regex instead
    assert "touch PWNED" in case.title and "\\" in case.steps[1].fields["pattern"] and '"' in case.steps[1].fields["pattern"]
    script = tmp_path / "hostile.py"
    assert cli.main(["export", "hostile-strings", "--cases", str(tmp_path / "hostile.yaml"), "-o", str(script)]) == 0
    tree = ast.parse(script.read_text())
    constants = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    assert case.steps[1].fields["pattern"] in constants
    # the title and description only reach comments, each of their lines behind a '#'
    assert all(line.lstrip().startswith("#") for line in script.read_text().splitlines() if "PWNED" in line
               and not line.lstrip().startswith(("fail(", "perturb(")))
    calls = {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute)}
    assert "system" not in calls
    workdir = tmp_path / "run"
    workdir.mkdir()
    ((code, out),) = run_scripts([script], workdir).values()
    assert code == 0, out
    assert list(workdir.iterdir()) == []


def test_issue_format_has_the_bug_template_sections(capsys):
    assert cli.main(["export", "seq-cls-set-adapter-second", "--format", "issue"]) == 0
    text = capsys.readouterr().out
    for heading in ("### System Info", "### Who can help?", "### Information", "### Tasks", "### Reproduction",
                    "### Expected behavior", "#### Actual behavior"):
        assert heading in text
    assert "- peft version: " in text and "```python" in text and "BUG REPRODUCED" in text
    expected = text.split("### Expected behavior")[1].split("#### Actual behavior")[0]
    assert "can switch to the second, with its own classifier head" in expected  # the fixed behaviour
    actual = text.split("#### Actual behavior")[1]
    assert "the reproduction gives **" in actual
    assert "https://github.com/huggingface/peft/issues/1574" in text


def test_unknown_id_is_one_line_with_suggestions():
    proc = subprocess.run([sys.executable, "-m", "pytest_peft_edges", "export", "seq-cls-set-adaptor-second"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "unknown case id 'seq-cls-set-adaptor-second'; did you mean seq-cls-set-adapter-second" in proc.stderr


@pytest.mark.parametrize("argv", [["export"], ["export", "x", "--format", "pdf"], ["frobnicate"], ["list", "--bogus"],
                                  ["table", "missing.json"]])
def test_bad_options_are_one_line_and_exit_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as excinfo:
        raise SystemExit(cli.main(argv))
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("peft-edges: error: ") and err.count("\n") == 1


def test_list_and_env(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "seq-cls-set-adapter-second\n" in out and "known bug S1: peft <0.11.0" in out
    assert cli.main(["env"]) == 0
    env = capsys.readouterr().out
    for name in ("Platform", "Python version", "PyTorch version", "transformers version", "peft version",
                 "accelerate version", "safetensors version", "huggingface_hub version", "pytest-peft-edges version"):
        assert f"- {name}: " in env


def test_list_check_is_a_ci_gate(capsys, tmp_path):
    example = EXAMPLES / "example-untrained-adapter-is-a-no-op.yaml"
    assert cli.main(["list", "--check", "--cases", str(example)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("peft-edges: peft ")  # the versions header
    assert out[1].startswith("example-untrained-adapter-is-a-no-op: reproduced — known bug lora-b-zero-init")
    assert len(out) == 3 and " — 1 cases: 0 fixed, 1 reproduced, 0 regressed, 0 range-wrong, 0 errors" in out[2]
    # a regressed case and a malformed one make it exit 1
    (tmp_path / "bad.yaml").write_text(example.read_text().replace("'>=0'", "'<0.0.1'").replace(
        "id: example-untrained-adapter-is-a-no-op", "id: now-regressed"))
    (tmp_path / "broken.yaml").write_text("id: broken\ntitle: t\nsteps: []\n")
    assert cli.main(["list", "--check", "--cases", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "now-regressed: regressed — " in out and "MALFORMED" in out and "1 malformed" in out
    assert "seq-cls-set-adapter-second" not in out  # --cases alone checks only those files


def test_list_check_with_catalogue_includes_the_bundled_cases(capsys):
    assert cli.main(["list", "--cases", str(EXAMPLES), "--catalogue"]) == 0
    out = capsys.readouterr().out
    assert "seq-cls-set-adapter-second\n" in out and "example-untrained-adapter-is-a-no-op\n" in out


def test_export_failures_writes_a_script_per_failed_case(pytester):
    (pytester.path / "c.yaml").write_text(textwrap.dedent("""
        id: no-op
        title: t
        model: {architecture: bert}
        steps:
          - {op: snapshot, model: base, as: before}
          - {op: get_peft_model, config: {r: 2, target_modules: [query]}}
          - {op: snapshot, as: after}
        expect:
          - {id: changes, check: differ, a: after, b: before}
        known_bugs:
          - {id: zero-init, affected: {peft: '>=0'}, fails: {check: changes}}
    """))
    pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "c.yaml", "--peft-edges-export-failures", "repro")
    script = pytester.path / "repro" / "no-op.py"
    assert script.is_file()
    ((code, out),) = run_scripts([script], pytester.path).values()
    assert code == 1 and "BUG REPRODUCED: known bug zero-init" in out


MERGE_CASE = """
id: merge-unmerge-unload-delete
title: merging, unmerging, unloading and deleting adapters keep outputs consistent
model: {architecture: llama, head: causal_lm}
steps:
  - {op: snapshot, model: base, as: out_base}
  - {op: get_peft_model, config: {r: 2, target_modules: [q_proj]}}
  - {op: add_adapter, adapter_name: extra, config: {r: 2, target_modules: [q_proj]}}
  - {op: perturb, seed: 1}
  - {op: delete_adapter, adapter_name: extra}
  - {op: snapshot, as: unmerged}
  - {op: merge_adapter}
  - {op: snapshot, as: merged}
  - {op: unmerge_adapter}
  - {op: unload, as: plain}
  - {op: snapshot, model: plain, as: out_plain}
expect:
  - {check: adapters, present: [default], absent: [extra]}
  - {check: allclose, a: merged, b: unmerged, atol: 1.0e-4}
  - {check: differ, a: unmerged, b: out_base}
  - {check: allclose, a: out_plain, b: out_base}
"""


def test_remaining_steps_export_and_agree(tmp_path, pytester):
    (tmp_path / "merge.yaml").write_text(MERGE_CASE)
    script = tmp_path / "merge.py"
    assert cli.main(["export", "merge-unmerge-unload-delete", "--cases", str(tmp_path / "merge.yaml"),
                     "-o", str(script)]) == 0
    ((code, out),) = run_scripts([script], tmp_path).values()
    pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", str(tmp_path / "merge.yaml")).assert_outcomes(passed=1)
    assert code == 0, out
