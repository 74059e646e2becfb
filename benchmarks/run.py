"""Benchmarks of pytest-peft-edges: plugin load overhead, catalogue time vs the import floor, per-case
time, peak RSS and the pytest-xdist speed-up. One command, several repetitions, medians and ratios:

    python benchmarks/run.py [--repeat 5] [--json benchmarks/results.json]

Everything it writes goes to a temporary directory, except the JSON file you name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
ENV = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "HF_HUB_OFFLINE": "1"}


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, children included) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env or ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0,):
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(argv)}\n{proc.stdout[-2000:]}")
    return elapsed, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def median_of(argv: list[str], cwd: Path, repeat: int, env: dict[str, str] | None = None) -> tuple[float, list[float]]:
    runs = [timed(argv, cwd, env)[0] for _ in range(repeat)]
    return statistics.median(runs), runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default="benchmarks/results.json")
    args = parser.parse_args()
    results: dict[str, object] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="peft-edges-bench-") as tmp:
        work = Path(tmp)
        suite = work / "suite"
        suite.mkdir()
        (suite / "test_trivial.py").write_text(
            "import pytest\n\n@pytest.mark.parametrize('n', range(50))\ndef test_n(n):\n    assert n >= 0\n")
        base = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_trivial.py"]
        timed(base + ["-p", "peft_edges"], suite)  # warm the page cache
        without, runs_without = median_of(base, suite, args.repeat)
        with_plugin, runs_with = median_of(base + ["-p", "peft_edges"], suite, args.repeat)
        results["plugin_load"] = {"without_s": without, "with_s": with_plugin, "ratio": with_plugin / without,
                                  "runs_without": runs_without, "runs_with": runs_with, "target": 1.03}

        floor, runs_floor = median_of([PYTHON, "-c", "import torch, transformers, peft"], work, args.repeat)
        report = work / "report.json"
        catalogue = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "peft_edges", "--peft-edges",
                     "--peft-edges-report", str(report)]
        cat_runs, rss = [], 0
        for _ in range(args.repeat):
            elapsed, peak = timed(catalogue, work)
            cat_runs.append(elapsed)
            rss = max(rss, peak)
        cat = statistics.median(cat_runs)
        cases = json.loads(report.read_text())["cases"]
        results["catalogue"] = {"floor_s": floor, "runs_floor": runs_floor, "catalogue_s": cat, "runs": cat_runs,
                                "ratio": cat / floor, "target": 1.5, "cases": len(cases),
                                "peak_rss_mib": rss / 1024, "rss_target_mib": 1024}
        results["per_case_s"] = {c["id"]: c["duration_s"] for c in sorted(cases, key=lambda c: -c["duration_s"])}
        no_hash = catalogue + ["-k", "not modules-to-save-prefix-names"]
        plain, _ = median_of(no_hash, work, args.repeat)
        results["catalogue_without_hash_seed_case"] = {"catalogue_s": plain, "ratio": plain / floor}
        xdist_env = {**ENV}
        parallel, par_runs = median_of(catalogue + ["-p", "xdist", "-n", "2"], work, max(3, args.repeat // 2), xdist_env)
        results["xdist"] = {"serial_s": cat, "n2_s": parallel, "speedup": cat / parallel, "runs": par_runs}

    rows = [
        ("plugin load: 50 trivial tests, -p peft_edges vs without", f"{with_plugin:.3f} s vs {without:.3f} s",
         f"{with_plugin / without:.3f}x (target <= 1.03x)"),
        ("catalogue vs `import torch, transformers, peft`", f"{cat:.2f} s vs {floor:.2f} s",
         f"{cat / floor:.2f}x (target <= 1.5x)"),
        ("  catalogue without the hash-seed case", f"{plain:.2f} s", f"{plain / floor:.2f}x"),
        ("peak RSS of a catalogue run (children included)", f"{rss / 1024:.0f} MiB", "target <= 1024 MiB"),
        ("pytest-xdist -n 2 vs serial", f"{parallel:.2f} s vs {cat:.2f} s", f"{cat / parallel:.2f}x speed-up"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'median':<24}  ratio")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:<24}  {ratio}")
    print("slowest cases:", ", ".join(f"{k} {v:.2f}s" for k, v in list(results["per_case_s"].items())[:5]))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
