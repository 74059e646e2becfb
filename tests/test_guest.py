"""A well-behaved guest in someone else's test session (issue 12).

Cases are native pytest items; printed ids can be passed back; a session without cases is untouched;
a case is offline while it runs and the host's environment and garbage collector are as before after it;
the plugin installed as a wheel tests the peft that PYTHONPATH selects.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "tests" / "cases"

FIXED = "example-lora-round-trip"


def copy_examples(root: Path) -> Path:
    cases = root / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    for file in EXAMPLES.glob("*.yaml"):
        (cases / file.name).write_text(file.read_text())
    return cases


def ids(result) -> list[str]:
    return [line for line in result.stdout.lines if "::" in line and " " not in line]


# A session without cases --------------------------------------------------------------------------

DRIVER = """
import gc, json, os, sys
import pytest

def snapshot():
    return {"env": dict(os.environ), "gc": [gc.isenabled(), gc.get_freeze_count()], "path": list(sys.path),
            "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "peft", "huggingface_hub"))}

before = snapshot()
rc = pytest.main(sys.argv[1:] + ["-p", "no:cacheprovider", "--import-mode=importlib", "-q", "test_probe.py"])
after = snapshot()
with open("driver.json", "w") as f:
    json.dump({"rc": int(rc), "before": before, "after": after}, f)
"""

PROBE = """
import gc, json, os, sys

def test_probe():
    with open("inside.json", "w") as f:
        json.dump({"env": dict(os.environ), "gc": [gc.isenabled(), gc.get_freeze_count()], "path": list(sys.path)}, f)
"""


def test_a_session_without_cases_is_left_exactly_as_it_was(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_TELEMETRY"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(driver=DRIVER, test_probe=PROBE)
    runs = {}
    for name, plugin in (("with", ["-p", "peft_edges"]), ("without", [])):
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # the outer pytest's own
        out = subprocess.run([sys.executable, "driver.py", *plugin], cwd=pytester.path, capture_output=True, text=True,
                             env=env)
        data = json.loads((pytester.path / "driver.json").read_text())
        data["inside"] = json.loads((pytester.path / "inside.json").read_text())
        data["stdout"] = re.sub(r"in [0-9.]+s", "", out.stdout)
        assert data["rc"] == 0, out.stdout
        runs[name] = data
    with_plugin = runs["with"]
    for key in ("env", "gc", "path", "modules"):  # os.environ, gc state, sys.path, no heavy import
        assert with_plugin["after"][key] == with_plugin["before"][key], key
    assert with_plugin["inside"] == runs["without"]["inside"]  # the test saw what it sees without the plugin
    assert with_plugin["inside"]["gc"] == [True, 0]
    assert "HF_HUB_OFFLINE" not in with_plugin["inside"]["env"]
    assert with_plugin["stdout"] == runs["without"]["stdout"]  # no output either


# A case among the user's tests: offline inside, nothing left behind --------------------------------

RECORDING_CONFTEST = """
import json, os
import huggingface_hub  # imported before any case: it has read the offline variables already
import pytest_peft_edges.reporting as reporting

original = reporting.judge_and_act
SEEN = {}

def flags():
    import huggingface_hub.constants as constants
    import sys
    out = {"env": {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")},
           "hub": constants.HF_HUB_OFFLINE}
    hub_module = sys.modules.get("transformers.utils.hub")
    if hub_module is not None and hasattr(hub_module, "_is_offline_mode"):
        out["transformers"] = hub_module._is_offline_mode
    return out

def recording(item, *args, **kwargs):
    SEEN[item.name] = flags()
    return original(item, *args, **kwargs)

reporting.judge_and_act = recording

def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: 0 if "test_1" in item.name else 1 if ".yaml" in item.nodeid else 2)

def pytest_sessionfinish(session):
    with open("seen.json", "w") as f:
        json.dump(SEEN, f)
"""

USER_TESTS = """
import gc, os, weakref

HOLD = []

class Big:
    def __init__(self):
        self.payload = bytearray(32 * 1024 * 1024)
        self.me = self  # a reference cycle: only the collector frees it

def test_1_before_the_case():
    big = Big()
    HOLD.extend([big, weakref.ref(big)])

def test_2_after_the_case():
    from conftest import flags
    assert gc.isenabled() and gc.get_freeze_count() == 0
    ref = HOLD[1]
    HOLD.clear()
    gc.collect()
    assert ref() is None, "a cycle dropped after a case must be collected"
    assert flags() == {"env": {"HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None}, "hub": False,
                       **({"transformers": False} if "transformers" in flags() else {})}
"""


def test_a_case_runs_offline_and_leaves_the_environment_and_gc_as_they_were(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    copy_examples(pytester.path)
    pytester.makeconftest(RECORDING_CONFTEST)
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "peft_edges", "--peft-edges-cases", "cases", "test_user.py",
                                           "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=3, xfailed=1)
    order = [line.split()[0] for line in result.stdout.lines if line.endswith("%]")]
    assert order[0] == "test_user.py::test_1_before_the_case" and order[-1] == "test_user.py::test_2_after_the_case"
    seen = json.loads((pytester.path / "seen.json").read_text())
    assert set(seen) == {FIXED, "example-untrained-adapter-is-a-no-op"}
    for flags in seen.values():
        assert flags["env"] == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        assert flags["hub"] is True
        assert flags.get("transformers", True) is True


def test_offline_blocks_the_hub_even_when_it_was_imported_online():
    code = textwrap.dedent("""
        import os
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.pop(name, None)
        import huggingface_hub.constants as constants
        from huggingface_hub.utils import get_session
        from pytest_peft_edges.offline import case_offline
        get_session()  # an online session, cached
        with case_offline():
            assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE is True
            try:
                get_session().get("https://huggingface.co/api/models/bert-base-uncased", timeout=1)
            except Exception as exc:
                print("inside:", type(exc).__name__)
        print("after:", os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["inside: OfflineModeIsEnabled", "after: None False"]


# Ids ---------------------------------------------------------------------------------------------

#: IN_PROCESS: a run that executes cases goes to a subprocess. pytester's in-process runs drop from
#: sys.modules what they imported, and torch (or a part of it, transformers' lazy modules import them
#: late) imported a second time in one process fails (SystemError, segfault): run alone, this file
#: crashed on it. Collection-only runs (--co) import no torch and stay in-process.

def test_user_case_ids_name_their_file_and_run_back_alone(pytester, isolated_env):
    copy_examples(pytester.path)
    listed = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases", "--co", "-q")
    assert ids(listed) == [f"cases/{FIXED}.yaml::{FIXED}",
                           "cases/example-untrained-adapter-is-a-no-op.yaml::example-untrained-adapter-is-a-no-op"]
    for case_id in ids(listed):  # with and without the option that found them
        for extra in ([], ["--peft-edges-cases", "cases"]):
            again = pytester.runpytest("-p", "peft_edges", *extra, case_id, "--co", "-q")
            assert ids(again) == [case_id]
    ran = pytester.runpytest_subprocess("-p", "peft_edges", ids(listed)[0])  # see IN_PROCESS
    ran.assert_outcomes(passed=1)


def test_bundled_ids_are_virtual_and_run_back_alone(pytester):
    listed = pytester.runpytest("-p", "peft_edges", "--peft-edges", "--co", "-q")
    found = ids(listed)
    assert len(found) > 20 and all(i.startswith("peft-edges/") and ".yaml::" in i for i in found)
    assert not any("site-packages" in i or "pytest_peft_edges" in i for i in found)
    for case_id in (found[0], found[-1], "peft-edges/transformers-boundary.yaml::transformers-add-adapter-api"):
        again = pytester.runpytest("-p", "peft_edges", case_id, "--co", "-q")
        assert ids(again) == [case_id]
    whole_file = pytester.runpytest("-p", "peft_edges", "peft-edges/transformers-boundary.yaml", "--co", "-q")
    assert ids(whole_file) == [i for i in found if i.startswith("peft-edges/transformers-boundary.yaml::")]


def test_a_wrong_virtual_id_is_a_usage_error(pytester):
    missing_file = pytester.runpytest("-p", "peft_edges", "peft-edges/nope.yaml")
    assert missing_file.ret == pytest.ExitCode.USAGE_ERROR
    missing_file.stderr.fnmatch_lines(["ERROR: file or directory not found: peft-edges/nope.yaml"])
    missing_case = pytester.runpytest("-p", "peft_edges", "peft-edges/transformers-boundary.yaml::nope")
    assert missing_case.ret == pytest.ExitCode.USAGE_ERROR
    missing_case.stderr.fnmatch_lines(["ERROR: not found: peft-edges/transformers-boundary.yaml::nope"])


def test_junit_xml_names_cases_without_install_paths(pytester, isolated_env):
    copy_examples(pytester.path)
    pytester.runpytest_subprocess("-p", "peft_edges", f"cases/{FIXED}.yaml",  # see IN_PROCESS
                                  "peft-edges/transformers-boundary.yaml::transformers-add-adapter-api",
                                  "--junitxml=j.xml")
    xml = (pytester.path / "j.xml").read_text()
    assert f'classname="cases.{FIXED}.yaml" name="{FIXED}"' in xml
    assert 'classname="peft-edges.transformers-boundary.yaml" name="transformers-add-adapter-api"' in xml
    assert "site-packages" not in xml


def test_last_failed_reruns_failed_cases_of_the_catalogue_and_the_users_tests(pytester, isolated_env):
    pytester.makepyfile(test_user="def test_ok(): pass\ndef test_broken(): assert False\n")
    first = pytester.runpytest_subprocess("-p", "peft_edges", "--peft-edges", "--peft-edges-known=fail",
                                          "test_user.py", "-p", "cacheprovider")
    outcomes = first.parseoutcomes()
    assert outcomes["failed"] >= 2  # the user's test and every reproduced bug of this stack
    rerun = pytester.runpytest_subprocess("-p", "peft_edges", "--peft-edges", "--peft-edges-known=fail",
                                          "test_user.py", "--lf", "-p", "cacheprovider")
    rerun.assert_outcomes(failed=outcomes["failed"], deselected=outcomes["passed"] + outcomes.get("skipped", 0))


def test_xdist_runs_a_selected_bundled_case(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess(
        "-p", "peft_edges", "-p", "xdist", "-n", "2",
        "peft-edges/transformers-boundary.yaml::transformers-add-adapter-api",
        "peft-edges/adapter-name-in-tuner-prefix.yaml::adapter-name-control-round-trip")
    outcomes = result.parseoutcomes()
    assert sum(outcomes.get(k, 0) for k in ("passed", "xfailed", "skipped")) == 2, result.stdout.str()


# Layouts: ini case paths, venv inside the project, hidden directories --------------------------

def test_ini_case_paths_are_collected_with_a_venv_inside_the_project_and_no_testpaths(pytester):
    copy_examples(pytester.path)
    hidden = pytester.path / ".peft" / "cases"
    hidden.mkdir(parents=True)
    (hidden / "hidden.yaml").write_text((EXAMPLES / f"{FIXED}.yaml").read_text().replace(f"id: {FIXED}", "id: hidden"))
    (pytester.path / ".peft" / "test_not_mine.py").write_text("def test_no(): assert False\n")
    venv = pytester.path / ".venv"
    (venv / "lib" / "site-packages").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "lib" / "site-packages" / "test_vendored.py").write_text("def test_no(): assert False\n")
    pytester.makeini("[pytest]\npeft_edges_cases =\n    cases\n    .peft/cases\n")
    pytester.makepyfile(test_a="def test_a(): pass", test_b="def test_b(): pass")
    listed = pytester.runpytest("-p", "peft_edges", "--co", "-q")
    assert sorted(ids(listed)) == sorted([
        ".peft/cases/hidden.yaml::hidden", f"cases/{FIXED}.yaml::{FIXED}",
        "cases/example-untrained-adapter-is-a-no-op.yaml::example-untrained-adapter-is-a-no-op",
        "test_a.py::test_a", "test_b.py::test_b"])
    with_catalogue = pytester.runpytest("-p", "peft_edges", "--co", "-q", "--peft-edges", ".")
    assert sum(i.startswith("peft-edges/") for i in ids(with_catalogue)) > 20
    assert set(ids(listed)) <= set(ids(with_catalogue))


# Installed as a wheel ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot build the wheel here (no package index?): {proc.stderr.strip()[-300:]}")
    return next(out.glob("*.whl"))


def pip_target(target: Path, *requirements: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           *requirements], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot install {requirements} here (no package index?): {proc.stderr.strip()[-300:]}")


def run_with_path(cwd: Path, pythonpath: list[Path], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath)), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "peft_edges", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("layout", ["venv-inside", "venv-outside"])
def test_wheel_ids_are_the_same_wherever_it_is_installed(wheel, tmp_path, layout):
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    venv = project / ".venv" if layout == "venv-inside" else tmp_path / "venv"
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    site = venv / "lib" / "site-packages"
    pip_target(site, str(wheel))
    where = run_with_path(project, [site], "--co", "-q", "--peft-edges")
    assert where.returncode == 0, where.stdout[-2000:]
    found = [line for line in where.stdout.splitlines() if "::" in line]
    assert len(found) > 20 and all(line.startswith("peft-edges/") for line in found)
    for case_id in (found[0], found[-1]):
        again = run_with_path(project, [site], "--co", "-q", case_id)
        assert [line for line in again.stdout.splitlines() if "::" in line] == [case_id]
    probe = subprocess.run([sys.executable, "-c", "import pytest_peft_edges; print(pytest_peft_edges.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(site)}, cwd=project, capture_output=True, text=True)
    assert probe.stdout.startswith(str(site))


def test_wheel_tests_the_peft_that_pythonpath_selects(wheel, tmp_path):
    site = tmp_path / "site"
    pip_target(site, str(wheel))
    other = tmp_path / "peft-0.18.1"
    pip_target(other, "peft==0.18.1")
    project = tmp_path / "project"
    project.mkdir()
    run = run_with_path(project, [other, site], "-q", "--peft-edges-report", "r.json",
                        "peft-edges/weighted-adapter-arithmetic.yaml")
    assert run.returncode == 0, run.stdout[-3000:]
    report = json.loads((project / "r.json").read_text())
    assert report["versions"]["peft"] == "0.18.1"
    verdicts = {case["id"]: (case["verdict"], case["bug"]) for case in report["cases"]}
    assert verdicts["weighted-adapter-svd-scaling"] == ("reproduced", "E")  # fixed in 0.21
    assert verdicts["weighted-adapter-negative-weight-linear"] == ("reproduced", "D-sign-dropped")


def test_the_wheel_carries_the_license_and_the_catalogue_but_no_test_module(wheel):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert any(name.startswith("pytest_peft_edges/cases/") and name.endswith(".yaml") for name in names)
    assert "pytest_peft_edges/catalogue.py" not in names


SEED_RECORDING_CONFTEST = """
import json
import torch

SEEDED = []
for module in (torch.cuda, torch.mps, torch.xpu, torch.mtia):  # what torch.manual_seed seeds besides the CPU
    for name in ("manual_seed", "manual_seed_all"):
        if hasattr(module, name):
            setattr(module, name, lambda seed, _name=module.__name__ + "." + name: SEEDED.append(_name))
STATE = torch.get_rng_state()

def pytest_sessionfinish(session):
    with open("seeded.json", "w") as f:
        json.dump({"seeded": SEEDED, "cpu_restored": bool(torch.equal(torch.get_rng_state(), STATE))}, f)
"""


def test_a_case_seeds_only_the_generator_it_restores(pytester, isolated_env):
    """Cases run on the CPU inside ``torch.random.fork_rng(devices=[])``: they seed the CPU generator,
    which is restored after each case, and no device's, which nothing would restore in the user's session
    (``torch.manual_seed`` seeds every device's besides the CPU's)."""
    copy_examples(pytester.path)
    pytester.makeconftest(SEED_RECORDING_CONFTEST)
    result = pytester.runpytest_subprocess("-p", "peft_edges", "--peft-edges-cases", "cases", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, xfailed=1)
    assert json.loads((pytester.path / "seeded.json").read_text()) == {"seeded": [], "cpu_restored": True}
