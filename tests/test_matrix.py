"""Merging --peft-edges-report files into the compatibility table."""

from __future__ import annotations

import json

import pytest

from pytest_peft_edges import cli
from pytest_peft_edges.matrix import END, START


def report(path, peft, transformers, cases):
    path.write_text(json.dumps({"versions": {"peft": peft, "transformers": transformers, "torch": "2.13.0"},
                                "cases": [{"id": i, "verdict": v, "bug": b, "upstream": [], "duration_s": 0.1,
                                           "message": ""} for i, v, b in cases]}))
    return str(path)


def test_table_orders_columns_by_version_and_names_the_bug(tmp_path, capsys):
    new = report(tmp_path / "a.json", "0.21.2", "5.23.0", [("s1", "fixed", None), ("t", "reproduced", "T")])
    old = report(tmp_path / "b.json", "0.10.0", "4.57.6", [("s1", "reproduced", "S1"), ("t", "skipped", None)])
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\noutro\n")
    assert cli.main(["table", new, old, "--readme", str(readme), "--json", str(tmp_path / "t.json")]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    assert "| case | peft 0.10.0<br>tf 4.57.6 | peft 0.21.2<br>tf 5.23.0 |" in text
    assert "| `s1` | **S1** | fixed |" in text and "| `t` | n/a | **T** |" in text
    table = json.loads((tmp_path / "t.json").read_text())
    assert table["bad"] == 0 and [c["peft"] for c in table["columns"]] == ["0.10.0", "0.21.2"]


def test_bad_cells_make_the_table_command_fail(tmp_path, capsys):
    path = report(tmp_path / "a.json", "0.21.2", "5.23.0", [("s1", "range-wrong", "S1"), ("t", "error", None)])
    assert cli.main(["table", path]) == 1
    captured = capsys.readouterr()
    assert "RANGE-WRONG (S1)" in captured.out and "ERROR" in captured.out
    assert "2 regressed/range-wrong/error cell(s)" in captured.err


@pytest.mark.parametrize("content", ["{}", "[1, 2]", "not json"])
def test_a_file_that_is_not_a_report_is_one_line_exit_2(tmp_path, capsys, content):
    (tmp_path / "x.json").write_text(content)
    assert cli.main(["table", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_readme_without_markers_is_an_error(tmp_path, capsys):
    path = report(tmp_path / "a.json", "0.21.2", "5.23.0", [("s1", "fixed", None)])
    (tmp_path / "README.md").write_text("no markers\n")
    assert cli.main(["table", path, "--readme", str(tmp_path / "README.md")]) == 2
