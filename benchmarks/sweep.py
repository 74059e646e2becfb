"""Wall time of the release sweep: fresh (no environment built, the uv cache warm) and again with the
environments built. One command:

    python benchmarks/sweep.py [--cache DIR] [--json benchmarks/sweep.json] [--keep]

``--cache`` (default: a temporary directory, removed unless --keep) is where the sweep builds its
environments; the first run starts with it empty, the second reuses it. Install settings come from the
environment as for ``tox -e sweep`` (UV_FIND_LINKS for the local CPU torch wheel, UV_CONSTRAINT). The
figures include the CPU time of every child process and the load average, since other work on the
machine stretches the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed_sweep(cache: Path, reports: Path) -> dict[str, object]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest_peft_edges", "sweep", "--cache", str(cache),
                           "--reports", str(reports)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n", flush=True)
    return {"wall_s": round(wall, 1), "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "exit": proc.returncode, "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
            "summary": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", help="environment cache of the sweep (emptied first)")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "sweep.json"))
    parser.add_argument("--keep", action="store_true", help="keep the cache directory")
    parser.add_argument("--reports", help="keep the JSON reports of the runs here (default: a temporary directory)")
    args = parser.parse_args()
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="peft-edges-sweep-cache-"))
    shutil.rmtree(cache, ignore_errors=True)
    results: dict[str, object] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                                  "command": f"{Path(sys.executable).name} -m pytest_peft_edges sweep --cache CACHE"}
    with tempfile.TemporaryDirectory(prefix="peft-edges-sweep-reports-") as tmp:
        reports = Path(args.reports or tmp)
        for phase in ("fresh", "warm"):  # the JSON file is written after each phase
            results[phase] = timed_sweep(cache, reports)
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep and not args.cache:
        shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
