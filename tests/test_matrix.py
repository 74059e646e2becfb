"""Merging --peft-edges-report files into the compatibility table."""

from __future__ import annotations

import json

import pytest

from pytest_peft_edges import cli
from pytest_peft_edges.matrix import END, START, build_table, load_reports, to_markdown


def report(path, peft, transformers, cases):
    path.write_text(json.dumps({"versions": {"peft": peft, "transformers": transformers, "torch": "2.13.0"},
                                "cases": [{"id": i, "verdict": v, "bug": b, "upstream": [], "duration_s": 0.1,
                                           "message": ""} for i, v, b in cases]}))
    return str(path)


def test_table_groups_columns_by_transformers_and_names_the_bug(tmp_path, capsys):
    new = report(tmp_path / "a.json", "0.21.2", "5.23.0", [("s1", "fixed", None), ("t", "reproduced", "T")])
    old = report(tmp_path / "b.json", "0.10.0", "4.57.6", [("s1", "reproduced", "S1"), ("t", "skipped", None)])
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\noutro\n")
    assert cli.main(["table", new, old, "--readme", str(readme), "--json", str(tmp_path / "t.json")]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    assert "| case | transformers 4.57.6<br>peft 0.10.0 | transformers 5.23.0<br>peft 0.21.2 |" in text
    assert "| `s1` | **S1** | fixed |" in text and "| `t` | n/a | **T** |" in text
    table = json.loads((tmp_path / "t.json").read_text())
    assert table["bad"] == 0 and [c["peft"] for c in table["columns"]] == ["0.10.0", "0.21.2"]


def test_consecutive_releases_with_one_outcome_merge_into_a_span(tmp_path):
    outcomes = {"0.6.2": ("fixed", None), "0.7.0": ("reproduced", "D1"), "0.7.1": ("reproduced", "D1"),
                "0.8.0": ("reproduced", "D2"), "0.9.0": ("fixed", None), "0.10.0": ("fixed", None)}
    paths = [report(tmp_path / f"{v}.json", v, "4.57.6", [("d", verdict, bug), ("e", "fixed", None)])
             for v, (verdict, bug) in outcomes.items()]
    markdown = to_markdown(build_table(load_reports(paths)))
    assert "| case | transformers 4.57.6<br>peft 0.6.2 … 0.10.0 (6) |" in markdown
    assert "| `d` | fixed 0.6.2 · **D1** 0.7.0–0.7.1 · **D2** 0.8.0 · fixed 0.9.0–0.10.0 |" in markdown
    assert "| `e` | fixed |" in markdown


def test_a_partial_run_keeps_the_columns_it_did_not_run(tmp_path):
    """`tox -m quick` then `tox -e table`: the table file given back keeps the 16 other columns."""
    full = [report(tmp_path / f"full{i}.json", f"0.{i}.0", "4.57.6", [("a", "fixed", None), ("b", "reproduced", "B")])
            for i in range(10, 20)]
    table_file = tmp_path / "table.json"
    assert cli.main(["table", *full, "--json", str(table_file)]) == 0
    partial = report(tmp_path / "quick.json", "0.12.0", "4.57.6",
                     [("a", "reproduced", "A"), ("b", "reproduced", "B"), ("c", "fixed", None)])
    assert cli.main(["table", str(table_file), partial, "--json", str(table_file)]) == 0
    table = json.loads(table_file.read_text())
    assert [c["peft"] for c in table["columns"]] == [f"0.{i}.0" for i in range(10, 20)]
    rows = {row["id"]: row["cells"] for row in table["rows"]}
    assert rows["a"][2] == {"verdict": "reproduced", "bug": "A"} and rows["a"][3] == {"verdict": "fixed", "bug": None}
    # a case new in the partial run: not run on the other columns
    assert rows["c"][2] == {"verdict": "fixed", "bug": None} and rows["c"][0] is None
    # the table alone (no new report) is reproduced as it was
    assert cli.main(["table", str(table_file), "--json", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text()) == table


def test_a_case_gone_from_the_new_reports_leaves_the_merged_table(tmp_path):
    old = report(tmp_path / "old.json", "0.10.0", "4.57.6", [("kept", "fixed", None), ("removed", "fixed", None)])
    table_file = tmp_path / "table.json"
    assert cli.main(["table", old, "--json", str(table_file)]) == 0
    new = report(tmp_path / "new.json", "0.11.0", "4.57.6", [("kept", "fixed", None)])
    assert cli.main(["table", str(table_file), new, "--json", str(table_file)]) == 0
    table = json.loads(table_file.read_text())
    assert [row["id"] for row in table["rows"]] == ["kept"] and len(table["columns"]) == 2


def test_bad_cells_make_the_table_command_fail(tmp_path, capsys):
    path = report(tmp_path / "a.json", "0.21.2", "5.23.0", [("s1", "range-wrong", "S1"), ("t", "error", None)])
    assert cli.main(["table", path]) == 1
    captured = capsys.readouterr()
    assert "RANGE-WRONG (S1)" in captured.out and "ERROR" in captured.out
    assert "2 regressed/range-wrong/error cell(s)" in captured.err


@pytest.mark.parametrize("content", ["{}", "[1, 2]", "not json", '{"columns": [{"peft": "1"}], "rows": [{"id": "x"}]}'])
def test_a_file_that_is_not_a_report_is_one_line_exit_2(tmp_path, capsys, content):
    (tmp_path / "x.json").write_text(content)
    assert cli.main(["table", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_readme_without_markers_is_an_error(tmp_path, capsys):
    path = report(tmp_path / "a.json", "0.21.2", "5.23.0", [("s1", "fixed", None)])
    (tmp_path / "README.md").write_text("no markers\n")
    assert cli.main(["table", path, "--readme", str(tmp_path / "README.md")]) == 2
