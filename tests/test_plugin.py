"""The plugin as a downstream repo meets it: loading, laziness, header, fixtures."""

from __future__ import annotations

import subprocess
import sys

import pytest

FOREIGN_TEST = """
    import torch
    from peft import LoraConfig, get_peft_model

    def test_bert(tiny_bert, tiny_inputs):
        model = get_peft_model(tiny_bert, LoraConfig(task_type="SEQ_CLS", target_modules=["query", "value"]))
        assert model(**tiny_inputs(model)).logits.shape == (2, 2)

    def test_llama(tiny_llama, tiny_inputs):
        model = get_peft_model(tiny_llama, LoraConfig(target_modules=["q_proj", "v_proj"]))
        assert model(**tiny_inputs(model)).logits.shape == (2, 8, 99)
"""


def test_fixtures_work_in_a_foreign_repo_with_autoload_disabled(pytester, isolated_env):
    pytester.makepyfile(test_downstream=FOREIGN_TEST)
    result = pytester.runpytest_subprocess("-p", "peft_edges")
    result.assert_outcomes(passed=2)


def test_loading_the_plugin_imports_no_heavy_library(pytester, isolated_env):
    pytester.makepyfile(test_light="""
        import sys

        def test_nothing_heavy():
            heavy = [name for name in ("torch", "transformers", "peft") if name in sys.modules]
            assert heavy == []
    """)
    result = pytester.runpytest_subprocess("-p", "peft_edges", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*peft-edges: peft *, transformers *, torch *"])


def test_import_time_lists_no_heavy_library():
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pytest_peft_edges.plugin"],
                         capture_output=True, text=True, check=True).stderr
    modules = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.splitlines() if "|" in line}
    assert "pytest_peft_edges" in modules
    assert modules.isdisjoint({"torch", "transformers", "peft", "safetensors"})


def test_header_is_quiet_unless_verbose(pytester):
    pytester.makepyfile(test_x="def test_x(): pass")
    quiet = pytester.runpytest("-p", "peft_edges")
    assert "peft-edges:" not in quiet.stdout.str()
    loud = pytester.runpytest("-p", "peft_edges", "-v")
    loud.stdout.fnmatch_lines(["peft-edges: peft *, transformers *, torch *, safetensors *"])


def test_no_peft_edges_disables_the_plugin(pytester):
    pytester.makepyfile(test_x="def test_x(tiny_bert): pass")
    result = pytester.runpytest("-p", "no:peft_edges")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'tiny_bert' not found*"])


def test_bad_known_mode_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\npeft_edges_known = maybe\n")
    result = pytester.runpytest("-p", "peft_edges")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*peft_edges_known must be one of xfail, fail, skip*"])



def test_declared_floors_are_the_ones_the_floor_env_installs():
    import configparser
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {d.split(">=")[0]: d.split(">=")[1] for d in deps if d.split(">=")[0] in ("pytest", "pluggy")}
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(repo / "tox.ini")
    pins = dict(line.strip().split("==") for line in tox["testenv:floor"]["deps"].split() if "==" in line)
    assert floors == {"pytest": "8.0", "pluggy": "1.3"}
    assert pins["pytest"].startswith(floors["pytest"]) and pins["pluggy"].startswith(floors["pluggy"])


def test_the_license_file_matches_the_declared_license():
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    assert tomllib.loads((repo / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
    text = (repo / "LICENSE").read_text()
    assert text.split()[:3] == ["Apache", "License", "Version"] and "Version 2.0, January 2004" in text
