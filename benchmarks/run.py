"""Benchmarks of pytest-peft-edges: plugin load overhead, catalogue time vs the import floor, per-case
time, peak RSS and the pytest-xdist speed-up. One command, several repetitions, medians and ratios:

    python benchmarks/run.py [--repeat 5] [--json benchmarks/results.json]
    python benchmarks/run.py --memory [--json benchmarks/memory.json]   # only the user-cycles RSS figures

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


def peak_rss_mib(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Peak RSS (MiB) of one command alone: measured from a fresh parent process."""
    probe = ("import resource, subprocess, sys\n"
             "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "sys.exit(proc.stdout[-2000:]) if proc.returncode else "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([PYTHON, "-c", probe, *argv], cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"benchmark command failed: {' '.join(argv)}\n{out.stderr[-2000:]}")
    return int(out.stdout) / 1024


#: A user's test file: every test drops the 128 MiB reference cycle the previous one kept, collects (as a
#: test expecting that memory back would), and keeps a new one alive until the next test.
CYCLES = """
import gc

HOLD = []

class Big:
    def __init__(self):
        self.payload = bytearray(128 * 1024 * 1024)
        self.me = self

def cycle():
    HOLD.clear()
    gc.collect()
    HOLD.append(Big())

""" + "".join(f"def test_cycle_{n}():\n    cycle()\n\n" for n in range(8))

#: Interleave: cycle test, case, cycle test, case, ... (the order pytest-randomly could produce).
INTERLEAVE = """
def pytest_collection_modifyitems(items):
    users = [i for i in items if "test_cycles" in i.nodeid]
    cases = [i for i in items if i not in users]
    mixed = []
    for n, item in enumerate(users):
        mixed.append(item)
        mixed.extend(cases[n * 4:(n + 1) * 4])
    mixed.extend(cases[len(users) * 4:])
    items[:] = mixed
"""


def memory(work: Path, python_path: str | None = None) -> dict[str, float]:
    """Peak RSS of the cycles file alone, of the catalogue alone, and of both interleaved."""
    suite = work / "memory"
    suite.mkdir(exist_ok=True)
    (suite / "test_cycles.py").write_text(CYCLES)
    (suite / "conftest.py").write_text(INTERLEAVE)
    env = {**ENV, **({"PYTHONPATH": python_path} if python_path else {})}
    base = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "peft_edges"]
    arms = {"user_tests_only_mib": base + ["test_cycles.py"],
            "catalogue_only_mib": base + ["--peft-edges"],
            "user_tests_and_catalogue_interleaved_mib": base + ["--peft-edges", "test_cycles.py"]}
    return {name: peak_rss_mib(argv, suite, env) for name, argv in arms.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None)
    parser.add_argument("--memory", action="store_true", help="only the peak RSS of user tests leaving cycles")
    args = parser.parse_args()
    if args.memory:
        with tempfile.TemporaryDirectory(prefix="peft-edges-bench-") as tmp:
            figures = memory(Path(tmp))
        for name, value in figures.items():
            print(f"{name:<45} {value:.0f} MiB")
        target = Path(args.json or "benchmarks/memory.json")
        target.write_text(json.dumps({"python": platform.python_version(), **figures}, indent=2) + "\n")
        print(f"wrote {target}")
        return 0
    args.json = args.json or "benchmarks/results.json"
    results: dict[str, object] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="peft-edges-bench-") as tmp:
        work = Path(tmp)
        # Measure with bytecode cached, as a normal install runs, even where PYTHONDONTWRITEBYTECODE is
        # set; the caches go to the temporary directory (every command is run once first to fill them).
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        suite = work / "suite"
        suite.mkdir()
        (suite / "test_trivial.py").write_text(
            "import pytest\n\n@pytest.mark.parametrize('n', range(50))\ndef test_n(n):\n    assert n >= 0\n")
        base = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_trivial.py"]
        # `-p NAME` itself makes pytest scan every installed distribution's entry points; an empty plugin
        # loaded the same way shows that share of the overhead.
        (suite / "empty_plugin.py").write_text('"""A plugin with no hooks."""\n')
        for warm in (["-p", "peft_edges"], ["-p", "no:peft_edges"]):
            timed(base + warm, suite)  # fill the bytecode caches and the page cache
        timed(base + ["-p", "empty_plugin"], suite, {**ENV, "PYTHONPATH": str(suite)})
        # ~140 ms runs: interleave many of them so drift on the machine hits every arm alike
        runs_without, runs_with, runs_empty = [], [], []
        for _ in range(4 * args.repeat):
            runs_without.append(timed(base + ["-p", "no:peft_edges"], suite)[0])
            runs_with.append(timed(base + ["-p", "peft_edges"], suite)[0])
            runs_empty.append(timed(base + ["-p", "empty_plugin"], suite, {**ENV, "PYTHONPATH": str(suite)})[0])
        without, with_plugin = statistics.median(runs_without), statistics.median(runs_with)
        empty = statistics.median(runs_empty)
        results["plugin_load"] = {"without_s": without, "with_s": with_plugin, "ratio": with_plugin / without,
                                  "empty_plugin_s": empty, "ratio_vs_empty_plugin": with_plugin / empty,
                                  "runs_without": runs_without, "runs_with": runs_with, "runs_empty": runs_empty,
                                  "target": 1.03}

        timed([PYTHON, "-c", "import torch, transformers, peft"], work)  # fill the bytecode caches
        floor, runs_floor = median_of([PYTHON, "-c", "import torch, transformers, peft"], work, args.repeat)
        # The catalogue imports with the collector off and freezes at exit (pytest_peft_edges/gc_freeze.py);
        # the same imports treated the same way show how much of the ratio that buys.
        same_gc = "import gc; gc.disable(); import torch, transformers, peft; gc.enable(); gc.freeze()"
        floor_fast, _ = median_of([PYTHON, "-c", same_gc], work, args.repeat)
        report = work / "report.json"
        catalogue = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "peft_edges", "--peft-edges",
                     "--peft-edges-report", str(report)]
        timed(catalogue + ["-p", "xdist", "-n", "2"], work)  # fill the bytecode caches (xdist's too)
        cat_runs, rss = [], 0
        for _ in range(args.repeat):
            elapsed, peak = timed(catalogue, work)
            cat_runs.append(elapsed)
            rss = max(rss, peak)
        cat = statistics.median(cat_runs)
        cases = json.loads(report.read_text())["cases"]
        results["catalogue"] = {"floor_s": floor, "runs_floor": runs_floor, "catalogue_s": cat, "runs": cat_runs,
                                "ratio": cat / floor, "target": 1.5, "cases": len(cases),
                                "floor_same_gc_s": floor_fast, "ratio_vs_floor_same_gc": cat / floor_fast,
                                "peak_rss_mib": rss / 1024, "rss_target_mib": 1024}
        results["per_case_s"] = {c["id"]: c["duration_s"] for c in sorted(cases, key=lambda c: -c["duration_s"])}
        xdist_env = {**ENV}
        parallel, par_runs = median_of(catalogue + ["-p", "xdist", "-n", "2"], work, max(3, args.repeat // 2), xdist_env)
        results["xdist"] = {"serial_s": cat, "n2_s": parallel, "speedup": cat / parallel, "runs": par_runs}

    rows = [
        ("plugin load: 50 trivial tests, -p peft_edges vs -p no:peft_edges", f"{with_plugin:.3f} s vs {without:.3f} s",
         f"{with_plugin / without:.3f}x (target <= 1.03x)"),
        ("  vs an empty plugin loaded with -p (pytest's own -p cost)", f"{with_plugin:.3f} s vs {empty:.3f} s",
         f"{with_plugin / empty:.3f}x"),
        ("catalogue vs `import torch, transformers, peft`", f"{cat:.2f} s vs {floor:.2f} s",
         f"{cat / floor:.2f}x (target <= 1.5x)"),
        ("  vs the same imports with the catalogue's gc treatment", f"{cat:.2f} s vs {floor_fast:.2f} s",
         f"{cat / floor_fast:.2f}x"),
        ("  sum of the per-case times", f"{sum(results['per_case_s'].values()):.2f} s", ""),
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
