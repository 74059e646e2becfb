"""Run one case in this process and print its failure records as JSON (used for ``hash_seeds``).

``python -m pytest_peft_edges.child CASE_FILE CASE_ID WORKDIR``; the parent sets PYTHONHASHSEED.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MARKER = "PEFT-EDGES-FAILURES:"


def main(argv: list[str]) -> int:
    from .engine import run_case
    from .offline import enforce_offline
    from .schema import Case, read_case_file

    enforce_offline()
    path, case_id, workdir = Path(argv[0]), argv[1], Path(argv[2])
    case = next(c for c in read_case_file(path) if isinstance(c, Case) and c.id == case_id)
    outcome = run_case(case, workdir, in_child=True)
    print(MARKER + json.dumps(list(outcome.failures)))
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses
    raise SystemExit(main(sys.argv[1:]))
