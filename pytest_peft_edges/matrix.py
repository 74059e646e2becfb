"""Merge ``--peft-edges-report`` JSON files into a case x (peft, transformers) compatibility table."""

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
    """Every report, sorted by (peft, transformers) version; a later report of the same pair wins."""
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        document = json.loads(Path(path).read_text())
        if not isinstance(document, dict) or "versions" not in document or "cases" not in document:
            raise ValueError(f"{path}: not a --peft-edges-report file")
        versions = document["versions"]
        by_pair[(versions.get("peft") or "?", versions.get("transformers") or "?")] = document
    return [by_pair[key] for key in sorted(by_pair, key=_pair_key)]


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


def to_markdown(table: dict[str, Any]) -> str:
    """The table as GitHub markdown: one row a case, one column a (peft, transformers) pair."""
    header = ["case"] + [f"peft {c['peft']}<br>tf {c['transformers']}" for c in table["columns"]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table["rows"]:
        lines.append("| " + " | ".join([f"`{row['id']}`"] + [_cell(c) for c in row["cells"]]) + " |")
    lines.append("")
    lines.append("**S1** (a bug id): that known bug reproduces (strict xfail); fixed: the fixed behaviour holds; "
                 "n/a: the case needs a newer release; —: not run. Any REGRESSED, RANGE-WRONG or ERROR cell is a defect of the "
                 f"catalogue or a new upstream change ({table['bad']} here).")
    return "\n".join(lines)


def replace_between_markers(text: str, block: str) -> str:
    """``text`` with the part between the table markers replaced by ``block``."""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {START} ... {END} markers found")
    return pattern.sub(lambda _m: f"{START}\n{block}\n{END}", text)
