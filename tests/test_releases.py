"""The release index, the sweep and `peft-edges bisect`, on a stub release index: no network, no peft.

The real sweep (every release, uv environments) runs in tests/test_release_sweep.py behind `tox -e sweep`.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_peft_edges import cli
from pytest_peft_edges.releases import cli as releases_cli
from pytest_peft_edges.releases.bisect import bisect, outcome
from pytest_peft_edges.releases.envs import Store
from pytest_peft_edges.releases.index import PEFT_RELEASES, ReleaseIndex, load_index
from pytest_peft_edges.releases.runner import Run, pytest_command, run_release
from pytest_peft_edges.releases.sweep import plan, start_order, sweep
from pytest_peft_edges.schema import load_cases

REPO = Path(__file__).resolve().parent.parent
STUB = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10", "2.0")

# A user case with two bugs, recorded as they are in weighted-adapter-negative-weight-linear before the
# sweep: A (math domain) recorded on everything below 1.7, though 1.0 behaves as fixed.
CASE = """\
    id: stub-negative-weight
    title: a stub case for bisect
    model: {architecture: llama, head: causal_lm, seed: 0}
    steps:
      - {id: make, op: get_peft_model, adapter_name: other, config: {r: 4, target_modules: [q_proj]}}
    known_bugs:
      - id: A
        summary: raises
        affected: {peft: '<1.7'}
        fails: {step: make, raises: ValueError, match: 'x'}
      - id: B
        summary: sign dropped
        affected: {peft: '>=1.7,<1.9'}
        fails: {step: make, raises: ValueError, match: 'x'}
"""


def stub_observer(truth: dict[str, str], calls: list[str]):
    def observe(release: str):
        calls.append(release)
        return truth[release], {"message": f"stub {truth[release]} on {release}"}
    return observe


@pytest.fixture
def stub_case(tmp_path):
    path = tmp_path / "stub.yaml"
    path.write_text(textwrap.dedent(CASE))
    [case] = load_cases([path])
    return case


def truth_d() -> dict[str, str]:
    """1.0 fixed, 1.1-1.6 A, 1.7-1.8 B, 1.9 on fixed: the shape of bug D."""
    return {v: "fixed" if v == "1.0" else "A" if v < "1.7" and len(v) == 3 else "B" if v in ("1.7", "1.8")
            else "fixed" for v in STUB}


def test_the_index_is_every_release_of_the_supported_range_oldest_first():
    index = load_index()
    assert index.peft[0] == "0.6.2" and index.peft[-1] == "0.21.2" and len(index.peft) == 29
    assert index.between("0.17.1", "0.19.0") == ["0.17.1", "0.18.0", "0.18.1", "0.19.0"]
    assert ("0.18.1", "5.24.0") in index.boundary and index.transformers == "4.57.6"
    with pytest.raises(ValueError, match=r"peft 0\.6\.1 is not a release of the index \(0\.6\.2 \.\.\. 0\.21\.2\)"):
        index.between("0.6.1")
    with pytest.raises(ValueError, match="--from 0.19.0 is newer than --to 0.18.0"):
        index.between("0.19.0", "0.18.0")
    with pytest.raises(ValueError, match="oldest first"):
        ReleaseIndex(peft=("0.2", "0.1"))


def test_pyproject_states_the_supported_range():
    text = (REPO / "pyproject.toml").read_text()
    assert f'"peft>={PEFT_RELEASES[0]}"' in text


def test_plan_runs_every_release_with_the_base_transformers_then_the_boundary_pairs():
    index = ReleaseIndex(peft=STUB, transformers="4.0", boundary=(("1.1", "5.0"), ("1.9", "5.1")))
    assert plan(index, "1.0", "1.2") == [("1.0", "4.0"), ("1.1", "4.0"), ("1.2", "4.0"), ("1.1", "5.0")]
    assert plan(index, peft=["1.9"], boundary=False) == [("1.9", "4.0")]
    assert plan(index, peft=["1.9"], transformers="4.1") == [("1.9", "4.1"), ("1.9", "5.1")]


def test_bisect_finds_first_affected_and_first_fixed_and_the_wrong_range(stub_case):
    calls: list[str] = []
    result = bisect(stub_case.id, STUB, stub_observer(truth_d(), calls), stub_case.known_bugs,
                    stack={"transformers": "4.57.6"})
    assert [(s.outcome, s.releases[0], s.releases[-1]) for s in result.segments] == [
        ("fixed", "1.0", "1.0"), ("A", "1.1", "1.6"), ("B", "1.7", "1.8"), ("fixed", "1.9", "2.0")]
    a, b = result.findings
    assert (a.first_affected, a.first_fixed, a.found, a.agrees) == ("1.1", "1.7", ">=1.1,<1.7", False)
    assert (b.first_affected, b.first_fixed, b.found, b.agrees) == ("1.7", "1.9", ">=1.7,<1.9", True)
    assert len(calls) == len(set(calls)) < len(STUB)  # bisection: not every release, none twice


def test_bisect_finds_a_regression_between_two_fixed_ends(stub_case):
    truth = {v: "fixed" for v in STUB}
    truth.update({"1.2": "A", "1.3": "A", "1.10": "A"})  # comes back in 1.10, outside its recorded range
    calls: list[str] = []
    result = bisect(stub_case.id, STUB, stub_observer(truth, calls), stub_case.known_bugs, every=True)
    a = result.findings[0]
    assert (a.first_affected, a.first_fixed, a.regression) == ("1.2", "1.4", "1.10")
    assert a.found == ">=1.2,<1.4 or >=1.10,<2.0" and not a.agrees and sorted(calls) == sorted(STUB)


@pytest.mark.parametrize("entry, label", [
    ({"verdict": "fixed", "bug": None}, "fixed"), ({"verdict": "range-wrong", "bug": "A"}, "fixed"),
    ({"verdict": "reproduced", "bug": "A"}, "A"), ({"verdict": "regressed", "bug": "B"}, "B"),
    ({"verdict": "regressed", "bug": None}, "failing"), ({"verdict": "skipped", "bug": None}, "n/a"),
    ({"verdict": "error", "bug": None}, "error"), (None, "missing")])
def test_the_outcome_of_a_report_entry_ignores_the_recorded_ranges(entry, label):
    assert outcome(entry) == label


@pytest.fixture
def stub_index(tmp_path):
    path = tmp_path / "index.json"
    path.write_text(json.dumps({"peft": list(STUB), "transformers": "4.57.6", "boundary": []}))
    return path


def test_bisect_command_prints_found_next_to_recorded_and_names_the_wrong_range(
        tmp_path, stub_case, stub_index, monkeypatch, capsys):
    calls: list[str] = []
    monkeypatch.setattr(releases_cli, "OBSERVER_FACTORY", lambda args, case, window: stub_observer(truth_d(), calls))
    code = cli.main(["bisect", "stub-negative-weight", "--cases", stub_case.path, "--index", str(stub_index)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"bisect stub-negative-weight: peft 1.0 ... 2.0 with transformers 4.57.6 — {len(calls)} of 12 releases run" in out
    assert "  peft 1.1 ... 1.6" in out and "known bug A:\n  found:    >=1.1,<1.7 (first affected 1.1, first fixed 1.7)" in out
    assert "  recorded: peft <1.7\n  the recorded range is WRONG: it includes 1.0, where the case does not show the bug" in out
    assert "known bug B:\n  found:    >=1.7,<1.9 (first affected 1.7, first fixed 1.9)\n  recorded: peft >=1.7,<1.9" in out
    assert "the recorded range is right on every release of the window" in out


def test_bisect_command_with_bug_window_and_agreeing_range_exits_0(stub_case, stub_index, monkeypatch, capsys):
    calls: list[str] = []
    monkeypatch.setattr(releases_cli, "OBSERVER_FACTORY", lambda args, case, window: stub_observer(truth_d(), calls))
    code = cli.main(["bisect", "stub-negative-weight", "--cases", stub_case.path, "--index", str(stub_index),
                     "--bug", "B", "--from", "1.5", "--to", "2.0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "known bug A" not in out and "known bug B" in out and min(calls, key=STUB.index) == "1.5"


@pytest.mark.parametrize("argv, message", [
    (["bisect", "stub-negative-weigth"], "unknown case id 'stub-negative-weigth'; did you mean stub-negative-weight"),
    (["bisect", "stub-negative-weight", "--bug", "Z"], "records no known bug 'Z' (its bugs: A, B)"),
    (["bisect", "stub-negative-weight", "--from", "0.9"], "peft 0.9 is not a release of the index"),
])
def test_bisect_usage_errors_are_one_line_exit_2(stub_case, stub_index, monkeypatch, capsys, argv, message):
    monkeypatch.setattr(releases_cli, "OBSERVER_FACTORY", lambda *a: pytest.fail("must not run"))
    assert cli.main([*argv, "--cases", stub_case.path, "--index", str(stub_index)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def fake_run(outcomes: dict[tuple[str, str], list[tuple[str, str, str | None]]]):
    def runner(peft: str, transformers: str, report: Path) -> Run:
        report.parent.mkdir(parents=True, exist_ok=True)
        document = {"versions": {"peft": peft, "transformers": transformers, "torch": "2.13.0"},
                    "cases": [{"id": i, "verdict": v, "bug": b, "message": "m"} for i, v, b in outcomes[(peft, transformers)]]}
        report.write_text(json.dumps(document))
        return Run(peft, transformers, report, 0.1, document)
    return runner


def test_sweep_writes_a_report_per_pair_and_fails_on_a_range_wrong_cell(tmp_path):
    pairs = [("1.0", "4.0"), ("1.1", "4.0"), ("1.1", "5.0")]
    outcomes = {("1.0", "4.0"): [("d", "range-wrong", "D")], ("1.1", "4.0"): [("d", "reproduced", "D")],
                ("1.1", "5.0"): [("d", "fixed", None)]}
    lines: list[str] = []
    result = sweep(pairs, tmp_path / "r", runner=fake_run(outcomes), log=lines.append)
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "peft1.0-tf4.0.json", "peft1.1-tf4.0.json", "peft1.1-tf5.0.json"]
    assert not result.ok and [(run.peft, case["id"]) for run, case in result.bad] == [("1.0", "d")]
    assert lines[0].startswith("peft 1.0 + transformers 4.0: 1 range-wrong") and "RANGE-WRONG d: m" in lines[0]
    assert [line.split(":")[0] for line in lines] == [f"peft {p} + transformers {t}" for p, t in pairs]


def test_runs_of_the_least_shared_environments_start_first_and_the_log_keeps_the_plan_order(tmp_path):
    """Warm: each boundary environment's runs go back to back on one worker (one server), the longest
    first; the shared environment's many short runs fill the end. Fresh: the plan's order, one run a
    task, so the first environment's runs keep the workers busy while the others are built."""
    pairs = [("1.0", "4.0"), ("1.1", "4.0"), ("1.2", "4.0"), ("1.1", "5.0"), ("1.2", "5.0"), ("1.2", "5.1")]
    assert start_order(pairs) == [[("1.1", "5.0"), ("1.2", "5.0")], [("1.2", "5.1")],
                                  [("1.0", "4.0")], [("1.1", "4.0")], [("1.2", "4.0")]]
    assert start_order(pairs, built=lambda tf: False) == [[pair] for pair in pairs]
    assert start_order(pairs, built=lambda tf: tf == "5.0") == [[("1.1", "5.0"), ("1.2", "5.0")], *(
        [pair] for pair in [("1.0", "4.0"), ("1.1", "4.0"), ("1.2", "4.0"), ("1.2", "5.1")])]
    assert start_order([]) == []
    started: list[tuple[str, str]] = []
    fake = fake_run({pair: [] for pair in pairs})
    lines: list[str] = []
    sweep(pairs, tmp_path / "r", runner=lambda p, t, r: started.append((p, t)) or fake(p, t, r), jobs=1, log=lines.append)
    assert started == [pair for task in start_order(pairs) for pair in task]
    assert [line.split(":")[0] for line in lines] == [f"peft {p} + transformers {t}" for p, t in pairs]


def test_a_run_that_imports_another_release_than_the_one_under_test_has_no_report(tmp_path):
    """The shadowing check: the report's versions must name the release the run was given."""
    class Shadowed(Store):
        def env(self, transformers):
            return sys.executable

        def peft(self, version):
            return tmp_path

        def plugin(self):
            root = tmp_path / "plugin"
            root.mkdir(exist_ok=True)
            (root / "pytest.ini").write_text("[pytest]\n")
            # a stand-in for pytest: writes a report naming another peft
            (root / "pytest.py").write_text(
                "import json, sys\nargs = sys.argv\npath = args[args.index('--peft-edges-report') + 1]\n"
                "json.dump({'versions': {'peft': '9.9', 'transformers': '4.0'}, 'cases': []}, open(path, 'w'))\n")
            return root

    run = run_release(Shadowed(tmp_path / "cache", torch="torch", fork=False), "1.0", "4.0", tmp_path / "r.json")
    assert run.document is None
    assert run.error == "the run imported peft 9.9 + transformers 4.0, not the release under test (1.0 + 4.0)"


def test_the_run_command_uses_its_own_ini_and_importlib_so_pythonpath_wins(tmp_path):
    command = pytest_command("py", tmp_path, tmp_path / "r.json", bundled=True, cases=[Path("x.yaml")])
    assert command[:8] == ["py", "-m", "pytest", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "-p"]
    assert "--import-mode=importlib" in command and "--peft-edges" in command
    assert "no:unraisableexception" in command  # its end-of-session gc passes cost ~1 s a run
    assert "no:logging" in command  # it attaches handlers to every non-propagating logger in each phase
    assert command[-2:] == ["--peft-edges-cases", str(Path("x.yaml").resolve())]


def test_run_env_drops_the_callers_pythonpath_and_bytecode_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    store = Store(tmp_path, torch="torch")
    env = store.run_env([tmp_path / "peft", tmp_path / "plugin"])
    assert env["PYTHONPATH"] == f"{tmp_path / 'peft'}:{tmp_path / 'plugin'}"
    assert "PYTHONDONTWRITEBYTECODE" not in env and env["PYTHONPYCACHEPREFIX"] == str(tmp_path / "pycache")
    assert env["HF_HUB_OFFLINE"] == "1"


def test_every_run_hashes_strings_alike_unless_the_caller_chose_a_seed(tmp_path, monkeypatch):
    """set_order labels and messages name the renaming that gave an order, which depends on the seed."""
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    assert Store(tmp_path, torch="torch").run_env([])["PYTHONHASHSEED"] == "0"
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    assert Store(tmp_path, torch="torch").run_env([])["PYTHONHASHSEED"] == "7"


def test_the_plugin_copy_holds_the_package_and_its_catalogue(tmp_path):
    store = Store(tmp_path, torch="torch")
    root = store.plugin()
    assert (root / "pytest.ini").read_text() == "[pytest]\n"
    assert (root / "pytest_peft_edges" / "plugin.py").is_file()
    assert sorted(p.name for p in (root / "pytest_peft_edges" / "cases").glob("*.yaml")) == \
        sorted(p.name for p in (REPO / "cases").glob("*.yaml"))
    assert store.plugin() == root  # reused while nothing changed


def test_bisect_names_releases_a_recorded_range_leaves_out_and_unexplained_outcomes(stub_case):
    from pytest_peft_edges.releases.bisect import render

    truth = truth_d()
    truth.update({"1.9": "B", "2.0": "error"})  # B lasts one release longer than recorded, then an error
    result = bisect(stub_case.id, STUB, stub_observer(truth, []), stub_case.known_bugs[1:])
    text = render(result)
    assert not result.ok
    assert "the recorded range is WRONG: it leaves out 1.9, where the bug shows" in text
    assert "  peft 2.0" in text and "      stub error on 2.0" in text
    assert text.endswith("outcomes no recorded bug explains: error on 2.0")


def fake_releases(tmp_path):
    """Two fake peft "releases" (1.0, 2.0): a package with its ``__version__`` and a dist-info each."""
    releases = {}
    for version in ("1.0", "2.0"):
        release = tmp_path / "peft" / version
        (release / "peft").mkdir(parents=True)
        (release / "peft" / "__init__.py").write_text(f"__version__ = {version!r}\n")
        (release / f"peft-{version}.dist-info").mkdir()
        (release / f"peft-{version}.dist-info" / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: peft\nVersion: {version}\n")
        releases[version] = release
    return releases


def test_the_fork_server_runs_each_job_with_its_own_release_first_on_sys_path(tmp_path):
    """Two fake peft "releases" through one fork server: each child imports its own, the server none."""
    from pytest_peft_edges.releases.runner import Zygote

    store = Store(tmp_path / "cache", torch="torch")
    root = store.plugin()
    releases = fake_releases(tmp_path)
    (tmp_path / "test_fake.py").write_text(
        "import os, sys\n\ndef test_release():\n    import peft\n"
        "    assert peft.__version__ == os.environ['WANT'] and 'transformers' not in sys.modules\n")
    env = store.run_env([root])
    del env["PYTHONPYCACHEPREFIX"]  # the venv's own bytecode: importing torch stays cheap
    server = Zygote(sys.executable, root, env, tmp_path / "logs")
    try:
        for version, release in releases.items():
            code, output = server.run(["-q", "-p", "no:cacheprovider", str(tmp_path / "test_fake.py")], cwd=tmp_path,
                                      path=[release], env={"WANT": version})
            assert (code, "1 passed" in output) == (0, True), output
        code, output = server.run(["-q", "-p", "no:cacheprovider", str(tmp_path / "test_fake.py")], cwd=tmp_path,
                                  path=[releases["1.0"]], env={"WANT": "2.0"})
        assert code == 1 and "1 failed" in output
    finally:
        server.close()
    assert server.proc.returncode == 0


def test_a_fork_server_with_a_peft_dir_imports_transformers_once_and_each_child_its_own_peft(tmp_path):
    """With a release directory at start, the server imports transformers (peft visible, never imported);
    each child still imports its own release, and transformers sees peft installed."""
    pytest.importorskip("transformers")
    from pytest_peft_edges.releases.runner import Zygote

    store = Store(tmp_path / "cache", torch="torch")
    root = store.plugin()
    releases = fake_releases(tmp_path)
    (tmp_path / "test_fake.py").write_text(
        "import importlib.metadata, os, sys\n\ndef test_release():\n"
        "    assert 'transformers' in sys.modules and 'peft' not in sys.modules\n"
        "    from transformers.utils import import_utils\n"
        "    assert import_utils.is_peft_available()\n"
        "    import peft\n"
        "    assert peft.__version__ == os.environ['WANT'] == importlib.metadata.version('peft')\n"
        "\ndef test_the_server_read_the_catalogue_and_compiles_a_template_once():\n"
        "    from pathlib import Path\n"
        "    from pytest_peft_edges.schema import case_files, files\n"
        "    assert len(files._READS) == len(case_files(Path('pytest_peft_edges/cases')))\n"
        "    import jinja2\n"
        "    first, second = jinja2.Template('{{ x }}!'), jinja2.Template('{{ x }}!')\n"
        "    assert first.root_render_func.__code__ is second.root_render_func.__code__\n"
        "    assert second.render(x=1) == '1!'\n")
    env = store.run_env([root])
    del env["PYTHONPYCACHEPREFIX"]
    server = Zygote(sys.executable, root, env, tmp_path / "logs", releases["2.0"])
    try:
        for version, release in releases.items():
            code, output = server.run(["-q", "-p", "no:cacheprovider", str(tmp_path / "test_fake.py")], cwd=root,
                                      path=[release], env={"WANT": version})
            assert (code, "2 passed" in output) == (0, True), output
    finally:
        server.close()
    assert server.proc.returncode == 0


def test_remembered_case_files_are_read_again_when_the_file_or_the_limits_change(tmp_path, monkeypatch):
    """The fork server's read-ahead: off by default; on, a file is parsed once per content and limits."""
    from pytest_peft_edges import limits, schema
    from pytest_peft_edges.schema import files

    parsed = []
    real = files._read_case_file
    monkeypatch.setattr(files, "_read_case_file", lambda path, mid: parsed.append(path) or real(path, mid))
    source = (Path(__file__).parent.parent / "cases").glob("*.yaml")
    case = tmp_path / "case.yaml"
    case.write_text(next(iter(sorted(source))).read_text())
    schema.read_case_file(case), schema.read_case_file(case)
    assert len(parsed) == 2  # off: a pytest session never remembers

    monkeypatch.setattr(files, "_READS", None)
    schema.remember_reads()
    first = schema.read_case_file(case)
    assert schema.read_case_file(case) == first and len(parsed) == 3
    case.write_text(case.read_text() + "# changed\n")
    schema.read_case_file(case)
    assert len(parsed) == 4
    monkeypatch.setitem(limits.COLLECTION, "string_chars", 50)
    assert schema.read_case_file(case) != first and len(parsed) == 5  # now too long a string somewhere


def test_memoized_template_compiles_render_what_jinja_renders(monkeypatch):
    jinja2 = pytest.importorskip("jinja2")
    from pytest_peft_edges.releases.zygote import memoize_template_compiles

    source = "{% for x in xs %}{{ x | upper }},{% endfor %}{{ card }}"
    expected = jinja2.Template(source).render(xs=["a", "b"], card="c")
    monkeypatch.setattr(jinja2.Environment, "compile", jinja2.Environment.compile)  # undone after the test
    memoize_template_compiles()
    first, second, other = jinja2.Template(source), jinja2.Template(source), jinja2.Template(source + "!")
    assert first.root_render_func.__code__ is second.root_render_func.__code__
    assert other.root_render_func.__code__ is not first.root_render_func.__code__
    assert second.render(xs=["a", "b"], card="c") == expected and other.render(xs=[], card="c") == "c!"
    assert isinstance(jinja2.Environment().compile(source, raw=True), str)  # raw source is not remembered


def test_environments_share_the_bytecode_of_the_files_they_share(tmp_path):
    """A new environment gets the bytecode of a built one for the same files (one inode), and Python uses
    it as is (no recompilation, its own file name in the code); a copy of a file is compiled anew."""
    import subprocess

    store = Store(tmp_path / "cache", torch="torch")
    old, new = (store.cache / "envs" / name / "lib" / "python3.11" / "site-packages" for name in ("old", "new"))
    for site in (old, new):
        site.mkdir(parents=True)
    (store.cache / "envs" / "old" / "peft-edges-env.json").write_text("{}")
    (old / "shared.py").write_text("def where():\n    return where.__code__.co_filename\n")
    os.link(old / "shared.py", new / "shared.py")
    (old / "copied.py").write_text("X = 1\n")
    (new / "copied.py").write_text("X = 1\n")
    prefix = store.cache / "pycache"

    def run(site, code):
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix), "PYTHONPATH": str(site)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout

    run(old, "import shared, copied")
    tag = sys.implementation.cache_tag
    donor = prefix / str(old).lstrip(os.sep) / f"shared.{tag}.pyc"
    assert donor.is_file()
    assert store.share_bytecode(store.cache / "envs" / "new") == 1
    linked = prefix / str(new).lstrip(os.sep) / f"shared.{tag}.pyc"
    assert os.path.samefile(linked, donor)
    assert not (prefix / str(new).lstrip(os.sep) / f"copied.{tag}.pyc").exists()
    assert run(new, "import shared; print(shared.where())").strip() == str(new / "shared.py")
    assert os.path.samefile(linked, donor)  # Python used the linked bytecode instead of writing its own
    assert store.share_bytecode(store.cache / "envs" / "new") == 0  # already there


def test_threads_asking_for_uv_at_once_find_it_once(tmp_path, monkeypatch):
    """The sweep's threads ask for uv together; finding it reads sysconfig, not thread-safe on first use."""
    import threading
    import time

    from pytest_peft_edges.releases import envs

    calls = []
    monkeypatch.setattr(envs, "find_uv", lambda: calls.append(1) or time.sleep(0.05) or "/bin/uv")
    store = Store(tmp_path, torch="torch")
    found = []
    threads = [threading.Thread(target=lambda: found.append(store.uv)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == ["/bin/uv"] * 4 and calls == [1]


def test_the_root_server_stands_for_an_environment_only_with_the_very_same_modules(tmp_path):
    """The root server imports torch once; the server it forks for an environment runs each job with the
    job's release, but refuses an environment whose files differ from the modules already imported."""
    import sysconfig

    from pytest_peft_edges.releases.runner import RootServer

    store = Store(tmp_path / "cache", torch="torch")
    root = store.plugin()
    releases = fake_releases(tmp_path)
    (tmp_path / "test_fake.py").write_text(
        "import os, sys\n\ndef test_release():\n    import peft\n"
        "    assert peft.__version__ == os.environ['WANT'] and 'torch' in sys.modules\n"
        "    assert sys.prefix == os.environ['HOME_WANTED'] and 'transformers' not in sys.modules\n")
    env = store.run_env([root])
    del env["PYTHONPYCACHEPREFIX"]
    shared = RootServer(sys.executable, root, env)
    try:
        server = shared.environment(Path(sys.prefix), tmp_path / "logs", None)
        try:
            for version, release in releases.items():
                code, output = server.run(["-q", "-p", "no:cacheprovider", str(tmp_path / "test_fake.py")],
                                          cwd=tmp_path, path=[release], env={"WANT": version, "HOME_WANTED": sys.prefix})
                assert (code, "1 passed" in output) == (0, True), output
        finally:
            server.close()
        other = tmp_path / "other"  # an environment holding none of the files imported (torch, numpy...)
        (other / Path(sysconfig.get_paths()["purelib"]).relative_to(sys.prefix)).mkdir(parents=True)
        with pytest.raises(RuntimeError, match=r"the fork server did not start: {'ready': False, 'differ': \['.+\]"):
            shared.environment(other, tmp_path / "logs", None)
    finally:
        shared.close()
    assert shared.proc.returncode == 0
