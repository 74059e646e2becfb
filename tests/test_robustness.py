"""The bundled catalogue is deterministic (order, repetition, xdist), offline and hermetic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("peft")

REORDER = """
import random

def pytest_collection_modifyitems(items):
    order = {order!r}
    if order == "reversed":
        items.reverse()
    elif order == "random":
        random.Random(20261125).shuffle(items)
"""


def verdicts(path) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in json.loads(path.read_text())["cases"]}


def run_catalogue(pytester, name, *extra, subprocess_run=False):
    args = ["-p", "peft_edges", "--peft-edges", "-p", "no:cacheprovider", "--peft-edges-report", f"{name}.json", *extra]
    result = pytester.runpytest_subprocess(*args) if subprocess_run else pytester.runpytest(*args)
    assert result.ret == 0, result.stdout.str()[-3000:]
    return verdicts(pytester.path / f"{name}.json")


def test_verdicts_do_not_depend_on_order_repetition_or_xdist(pytester, monkeypatch):
    first = run_catalogue(pytester, "run1")
    assert first and set(first.values()) <= {"fixed", "reproduced", "skipped"}
    assert run_catalogue(pytester, "run2") == first
    assert run_catalogue(pytester, "run3") == first
    for order in ("reversed", "random"):
        pytester.makeconftest(REORDER.format(order=order))
        assert run_catalogue(pytester, order) == first, order
    pytester.makeconftest("")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert run_catalogue(pytester, "xdist", "-p", "xdist", "-n", "2", subprocess_run=True) == first


def _snapshot(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else None


def test_catalogue_writes_nothing_outside_pytest_tmp_paths(tmp_path):
    cwd, home, hf_home, basetemp = (tmp_path / name for name in ("cwd", "home", "hf-home", "basetemp"))
    cwd.mkdir()
    home.mkdir()
    (cwd / "keep.txt").write_text("untouched")
    env = {**os.environ, "HOME": str(home), "HF_HOME": str(hf_home), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    before = _snapshot(cwd)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "peft_edges", "--peft-edges", "-p", "no:cacheprovider",
                           "-q", f"--basetemp={basetemp}"], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert _snapshot(cwd) == before, "the run wrote into its working directory"
    assert _snapshot(home) == [], "the run wrote into HOME"
    assert _snapshot(hf_home) is None, "the run created a Hugging Face cache"
    assert any(basetemp.rglob("adapter_model.safetensors")), "adapters are saved under pytest's basetemp"


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare(1) is not installed")
def test_catalogue_passes_without_any_network(tmp_path):
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"network namespaces are not permitted here: {probe.stderr.decode().strip()}")
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)  # the plugin itself must make the run offline
    proc = subprocess.run(["unshare", "-rn", sys.executable, "-m", "pytest", "-p", "peft_edges", "--peft-edges",
                           "-p", "no:cacheprovider", "-q", f"--basetemp={tmp_path / 'bt'}",
                           "--peft-edges-report", str(tmp_path / "r.json")],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert set(verdicts(tmp_path / "r.json").values()) <= {"fixed", "reproduced", "skipped"}


def test_a_directory_named_like_a_case_is_ignored(pytester):
    (pytester.path / "cases" / "looks-like.yaml").mkdir(parents=True)
    (pytester.path / "cases" / "ok.yaml").write_text(
        "id: ok\ntitle: t\nmodel: {architecture: bert}\nsteps: [{op: get_peft_model, config: {target_modules: [query]}}]\n")
    pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases").assert_outcomes(passed=1)


def test_a_message_quoting_the_cases_directory_is_the_same_in_every_session(tmp_path):
    """pytest numbers its tmp directories, so a message quoting a path would differ from run to run
    (seen: bug X6's HFValidationError quotes the adapter directory); it reads WORKDIR instead."""
    from pytest_peft_edges.engine import _without_workdir
    from pytest_peft_edges.verdicts import Failure

    workdir = tmp_path / "case"
    workdir.mkdir()
    failure = Failure("load", "exception", ("HFValidationError",), f"Repo id must be in the form: '{workdir}/saved'")
    assert _without_workdir(failure, workdir).message == "Repo id must be in the form: 'WORKDIR/saved'"
    (tmp_path / "link").symlink_to(workdir)
    linked = Failure("load", "exception", ("OSError",), f"no file in {workdir}/saved")
    assert _without_workdir(linked, tmp_path / "link").message == "no file in WORKDIR/saved"
    untouched = Failure("s", "check", ("CheckFailed",), "a != b")
    assert _without_workdir(untouched, workdir) is untouched
