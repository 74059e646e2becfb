"""Merge ``--peft-edges-report`` JSON files (and earlier tables) into a compatibility table.

A table JSON written by ``peft-edges table --json`` can be given back as an input beside new reports: its
columns are kept unless a new report covers the same (peft, transformers) pair, so a partial run
(``tox -m quick``) updates its own columns and deletes none of the others.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from packaging.version import Version

START = "<!-- peft-edges-table:start -->"
END = "<!-- peft-edges-table:end -->"
BAD = ("regressed", "range-wrong", "error")


def load_reports(paths: list[Path]) -> list[dict[str, Any]]:
    """Every report, sorted by (peft, transformers) version; a later report of the same pair wins.

    A table file among ``paths`` stands for one report per column. When any real report is given, the
    cases are those of the real reports (a case removed from the catalogue leaves the table).
    """
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    real_ids: set[str] = set()
    for path in paths:
        try:
            document = json.loads(Path(path).read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        if isinstance(document, dict) and "columns" in document and "rows" in document:
            for report in reports_of_table(document, path):
                versions = report["versions"]
                by_pair[(versions.get("peft") or "?", versions.get("transformers") or "?")] = report
            continue
        if not isinstance(document, dict) or "versions" not in document or "cases" not in document:
            raise ValueError(f"{path}: not a --peft-edges-report file")
        versions = document["versions"]
        by_pair[(versions.get("peft") or "?", versions.get("transformers") or "?")] = document
        real_ids.update(case["id"] for case in document["cases"])
    reports = [by_pair[key] for key in sorted(by_pair, key=_pair_key)]
    if real_ids:
        reports = [{**r, "cases": [c for c in r["cases"] if c["id"] in real_ids]} for r in reports]
    return reports


def reports_of_table(table: dict[str, Any], path: Path | str = "table") -> list[dict[str, Any]]:
    """The reports a table was built from (verdict and bug of every cell; None cells left out)."""
    try:
        reports = [{"versions": dict(column), "cases": []} for column in table["columns"]]
        for row in table["rows"]:
            for report, cell in zip(reports, row["cells"], strict=True):
                if cell is not None:
                    report["cases"].append({"id": row["id"], "verdict": cell["verdict"], "bug": cell.get("bug")})
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a table file ({exc!r})") from None
    return reports


def _pair_key(pair: tuple[str, str]) -> tuple[Any, ...]:
    def parse(text: str) -> Any:
        try:
            return Version(text)
        except Exception:  # noqa: BLE001 - "?" sorts last
            return Version("9999")

    return (parse(pair[0]), parse(pair[1]))


def build_table(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"columns": [{"peft", "transformers", "torch"}], "rows": [{"id", "cells": [{"verdict", "bug"} | None]}],
    "bad": n}``."""
    columns = [{"peft": r["versions"].get("peft"), "transformers": r["versions"].get("transformers"),
                "torch": r["versions"].get("torch")} for r in reports]
    ids = sorted({case["id"] for report in reports for case in report["cases"]})
    rows = []
    for case_id in ids:
        cells = []
        for report in reports:
            entry = next((c for c in report["cases"] if c["id"] == case_id), None)
            cells.append(None if entry is None else {"verdict": entry["verdict"], "bug": entry.get("bug")})
        rows.append({"id": case_id, "cells": cells})
    bad = sum(1 for row in rows for cell in row["cells"] if cell and cell["verdict"] in BAD)
    return {"columns": columns, "rows": rows, "bad": bad}


SYMBOL = {"fixed": "fixed", "regressed": "REGRESSED", "range-wrong": "RANGE-WRONG", "error": "ERROR",
          "skipped": "n/a"}


def _cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "—"
    if cell["verdict"] == "reproduced":
        return f"**{cell['bug'] or 'BUG'}**"
    text = SYMBOL.get(cell["verdict"], cell["verdict"])
    return f"{text} ({cell['bug']})" if cell.get("bug") and cell["verdict"] in BAD else text


def _groups(table: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """Column indices grouped by transformers release (oldest first), each sorted by peft."""
    groups: dict[str, list[int]] = {}
    for i, column in enumerate(table["columns"]):
        groups.setdefault(column["transformers"] or "?", []).append(i)
    order = sorted(groups, key=lambda tf: _pair_key(("0", tf)))
    return [(tf, sorted(groups[tf], key=lambda i: _pair_key((table["columns"][i]["peft"] or "?", tf))))
            for tf in order]


def _spans(labels: list[str], releases: list[str]) -> str:
    """``fixed 0.6.2 · **D** 0.7.0–0.17.1 · fixed 0.19.0–0.21.2``, or the one label of them all."""
    if len(set(labels)) == 1:
        return labels[0]
    parts: list[tuple[str, str, str]] = []
    for label, release in zip(labels, releases):
        if parts and parts[-1][0] == label:
            parts[-1] = (label, parts[-1][1], release)
        else:
            parts.append((label, release, release))
    return " · ".join(f"{label} {first}" if first == last else f"{label} {first}–{last}"
                      for label, first, last in parts)


def to_markdown(table: dict[str, Any]) -> str:
    """The table as GitHub markdown: one row a case, one column a transformers release; a cell lists
    the case's outcome on the peft releases run with that transformers, consecutive equal ones merged."""
    groups = _groups(table)
    header = ["case"]
    for tf, indices in groups:
        pefts = [table["columns"][i]["peft"] for i in indices]
        shown = f"{pefts[0]} … {pefts[-1]} ({len(pefts)})" if len(pefts) > 3 else ", ".join(pefts)
        header.append(f"transformers {tf}<br>peft {shown}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table["rows"]:
        cells = [f"`{row['id']}`"]
        for _tf, indices in groups:
            cells.append(_spans([_cell(row["cells"][i]) for i in indices],
                                [table["columns"][i]["peft"] for i in indices]))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("**S1** (a bug id): that known bug reproduces (strict xfail); fixed: the fixed behaviour holds; "
                 "n/a: the case needs another release (`requires`); —: not run; `0.7.0–0.17.1`: every release "
                 "of the column header from 0.7.0 to 0.17.1. Any REGRESSED, RANGE-WRONG or ERROR cell is a defect "
                 f"of the catalogue or a new upstream change ({table['bad']} here).")
    return "\n".join(lines)


def replace_between_markers(text: str, block: str) -> str:
    """``text`` with the part between the table markers replaced by ``block``."""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {START} ... {END} markers found")
    return pattern.sub(lambda _m: f"{START}\n{block}\n{END}", text)


def write_table(table: dict[str, Any], *, json_path: Path | str | None = None, markdown: Path | str | None = None,
                readme: Path | str | None = None) -> str:
    """Write ``table`` as JSON, as markdown, and/or between the markers of ``readme``; returns the markdown.
    A README without its markers raises ValueError naming the file."""
    text = to_markdown(table)
    if readme:
        readme = Path(readme)
        try:
            updated = replace_between_markers(readme.read_text(), text)
        except ValueError as exc:
            raise ValueError(f"{readme}: {exc}") from None
        readme.write_text(updated)
    if json_path:
        Path(json_path).write_text(json.dumps(table, indent=2) + "\n")
    if markdown:
        Path(markdown).write_text(text + "\n")
    return text

