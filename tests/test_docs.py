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


def test_a_bug_recorded_by_several_cases_is_described_alike():
    """The JSON report and the summary line group cases by bug id and show one summary and upstream for
    each: cases sharing a bug id must agree on them (the range may differ: a case can meet the bug over
    part of its range only)."""
    from pytest_peft_edges.plugin import bundled_cases_dir

    facts: dict[str, dict[tuple[str, tuple[str, ...]], list[str]]] = {}
    for case in schema.load_cases([bundled_cases_dir()]):
        for bug in case.known_bugs:
            facts.setdefault(bug.id, {}).setdefault((bug.summary, tuple(bug.upstream.links())), []).append(case.id)
    differing = {bug: described for bug, described in facts.items() if len(described) > 1}
    assert not differing, differing
