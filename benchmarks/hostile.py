"""Robustness numbers for README (issue 15): how long refusing each file of the hostile corpus takes.

    python benchmarks/hostile.py

Writes the corpus of tests/test_hostile.py to a temp dir and times ``schema.load_cases`` on each file
(best of 5) and on the whole directory. The whole run next to a good case is timed by
``tests/test_hostile.py::test_the_whole_corpus_is_refused_and_the_good_case_still_passes`` (-s prints it).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pytest_peft_edges import schema  # noqa: E402
from test_hostile import HOSTILE  # noqa: E402


def best(run, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    directory = Path(tempfile.mkdtemp())
    rows = []
    for name, (text, _expected) in sorted(HOSTILE.items()):
        path = directory / name
        path.write_text(text)
        found = schema.read_case_file(path)
        refused = all(isinstance(item, schema.MalformedCase) for item in found)
        rows.append((best(lambda: schema.read_case_file(path)), name, len(text.encode()), refused))
    whole = best(lambda: schema.load_cases([directory]))
    for seconds, name, size, refused in sorted(rows, reverse=True):
        print(f"{seconds * 1000:8.2f} ms  {size:8d} B  {'refused' if refused else 'ACCEPTED'}  {name.encode('unicode_escape').decode()}")
    print(f"{len(rows)} files, {sum(r[3] for r in rows)} refused; whole directory {whole * 1000:.1f} ms; "
          f"slowest {max(rows)[0] * 1000:.1f} ms ({max(rows)[1]})")


if __name__ == "__main__":
    main()
