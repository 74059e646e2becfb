"""docs/cases.md is generated from the registry and kept in sync; every documented example is valid."""

from __future__ import annotations

import pytest

from conftest import REPO
from pytest_peft_edges import checks, docs, registry, schema, steps  # noqa: F401 (checks, steps: register the operations)
from pytest_peft_edges.codegen import Names, Render


def test_docs_page_is_up_to_date():
    committed = (REPO / "docs" / "cases.md").read_text()
    assert committed == docs.render(), "docs/cases.md is stale: run `peft-edges docs -o docs/cases.md`"


def test_readme_links_the_case_docs():
    assert "docs/cases.md" in (REPO / "README.md").read_text()


def test_the_operations_are_registered_before_the_examples_are_listed():
    assert len(registry.STEPS) > 20 and len(registry.CHECKS) > 10


@pytest.mark.parametrize("name", sorted(registry.STEPS) + sorted(registry.CHECKS))
def test_every_operation_has_a_valid_example_that_renders_to_code(name):
    operation = registry.STEPS.get(name) or registry.CHECKS[name]
    entry = docs.example_fields(operation)
    assert entry.pop("op" if operation.kind == "step" else "check") == name
    for key, value in entry.items():
        assert key in operation.params, f"example field {key!r} is not a field of {name}"
        assert registry.type_error(value, operation.params[key].annotation) is None, key
    missing = [p.name for p in operation.params.values() if p.required and p.name not in entry]
    assert not missing, f"example of {name} lacks required fields {missing}"
    # the one definition renders the example into code that compiles (what the engine runs and export prints)
    render = Render(Names(), check_id="example")
    operation.render(render, entry)
    assert render.lines, f"{name} renders no code"
    compile("\n".join(render.lines), name, "exec")


def test_every_bundled_case_is_valid_and_documented():
    from pytest_peft_edges.plugin import bundled_cases_dir

    cases = schema.load_cases([bundled_cases_dir()])
    malformed = [c for c in cases if isinstance(c, schema.MalformedCase)]
    assert not malformed, [str(c.error) for c in malformed]
    for case in cases:
        assert case.title and len(case.description) > 80, f"{case.id} needs a real description"
        for bug in case.known_bugs:
            assert bug.summary, f"{case.id}: known bug {bug.id} needs a summary"


def test_the_catalogue_describes_each_bug_once():
    """A bug's summary and upstream are written by one case; the others recording it leave them out and
    read them from that case (schema.files.describe_bugs), so every loaded case carries them."""
    from pytest_peft_edges.plugin import bundled_cases_dir

    describers: dict[str, list[str]] = {}
    for path in schema.case_files(bundled_cases_dir()):
        for case in schema.read_case_file(path):
            for bug in case.known_bugs:
                if bug.summary or bug.upstream.links():
                    describers.setdefault(bug.id, []).append(case.id)
    assert {bug: cases for bug, cases in describers.items() if len(cases) > 1} == {}
    loaded = [case for case in schema.load_cases([bundled_cases_dir()]) if isinstance(case, schema.Case)]
    recorded = {bug.id for case in loaded for bug in case.known_bugs}
    assert recorded == set(describers)  # every bug described somewhere


def test_a_case_of_ones_own_reads_a_bugs_description_from_where_it_is_written(tmp_path, capsys):
    """Recording a catalogue bug by id takes its summary and upstream from the catalogue; a bug described
    by one of the loaded cases is read from it; a bug described nowhere keeps an empty summary."""
    from pytest_peft_edges import cli

    body = ("title: t\nmodel: {architecture: bert, head: seq_cls}\nsteps:\n  - {id: s, op: set_adapter, adapter_name: x}\n"
            "known_bugs:\n  - id: %s\n    affected: {peft: '<0.11.0'}\n    fails: {step: s, raises: ValueError, match: x}\n")
    (tmp_path / "mine.yaml").write_text("id: mine-s1\n" + body % "S1")
    (tmp_path / "new.yaml").write_text("id: mine-new\n" + body % "NEW" + "    summary: described here\n")
    (tmp_path / "ref.yaml").write_text("id: mine-ref\n" + body % "NEW")
    (tmp_path / "lone.yaml").write_text("id: mine-lone\n" + body % "LONE")
    found = {case.id: case.known_bugs[0] for case in schema.load_cases([tmp_path])}
    assert found["mine-s1"].summary == "a second SEQ_CLS adapter gets no copy of the classifier head, so set_adapter cannot find it"
    assert found["mine-s1"].upstream.label() == "#1574, PR #1615"
    assert found["mine-ref"].summary == "described here" and found["mine-ref"].affected == {"peft": "<0.11.0"}
    assert found["mine-lone"].summary == ""
    assert cli.main(["export", "mine-s1", "--cases", str(tmp_path / "mine.yaml")]) == 0
    assert "Known bug S1 (peft <0.11.0; #1574, PR #1615): a second SEQ_CLS adapter gets no copy" in capsys.readouterr().out


def test_the_catalogue_is_read_once_a_process_for_descriptions(tmp_path, monkeypatch):
    """A session loads its cases twice (collection, then the report's known_cases): a case of one's own
    that records an undescribed bug id reads the catalogue for its description the first time only,
    and again once a catalogue file changed."""
    import os
    import shutil

    from pytest_peft_edges import collection
    from pytest_peft_edges.schema import files

    catalogue = tmp_path / "catalogue"
    shutil.copytree(REPO / "cases", catalogue)
    monkeypatch.setattr(collection, "bundled_cases_dir", lambda: catalogue)
    reads = []
    real = files._read_case_file
    monkeypatch.setattr(files, "_read_case_file", lambda path, *a: reads.append(path) or real(path, *a))
    monkeypatch.setattr(files, "_CATALOGUE", {})
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "mine.yaml").write_text(
        "id: mine\ntitle: t\nmodel: {architecture: bert}\nsteps:\n  - {id: s, op: set_adapter, adapter_name: x}\n"
        "known_bugs:\n  - id: S1\n    affected: {peft: '<0.11.0'}\n    fails: {step: s, raises: ValueError, match: x}\n")
    size = len(schema.case_files(catalogue))
    first = schema.load_cases([mine])
    assert len(reads) == 1 + size
    second = schema.load_cases([mine])
    assert len(reads) == 2 + size  # only mine.yaml again
    assert first == second and first[0].known_bugs[0].upstream.label() == "#1574, PR #1615"
    changed = schema.case_files(catalogue)[0]
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    assert schema.load_cases([mine]) == first and len(reads) == 3 + 2 * size
