"""gc_freeze: no garbage collection over the imported libraries, during the run and at exit."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_heavy_imports_collect_nothing_then_freeze_once_and_restore_the_collector():
    out = run_python(
        "import gc\n"
        "from pytest_peft_edges.gc_freeze import heavy_imports\n"
        "with heavy_imports():\n"
        "    print('inside', gc.isenabled())\n"
        "    import json\n"
        "print('after', gc.isenabled(), gc.get_freeze_count() > 0)\n"
        "frozen = gc.get_freeze_count()\n"
        "gc.disable()\n"
        "with heavy_imports():\n"
        "    import csv\n"
        "print('user disabled', gc.isenabled(), gc.get_freeze_count() == frozen)\n"
    )
    assert out.splitlines() == ["inside False", "after True True", "user disabled False True"]


EXIT_PROBE = """
import atexit, sys, types

class Cycle:
    def __del__(self):
        print("cycle finalized at exit", flush=True)


KEEP = []  # alive until the module is torn down at exit, then only the final collection frees it

def test_leave_a_cycle_behind():
    if {torch_loaded}:
        sys.modules.setdefault("torch", types.ModuleType("torch"))  # stands in for a real torch import
    cycle = Cycle()
    cycle.me = cycle
    KEEP.append(cycle)
    atexit.register(print, "atexit handlers still run", flush=True)
"""


@pytest.mark.parametrize("torch_loaded", [True, False])
def test_exit_skips_the_final_collection_only_once_torch_is_loaded(pytester, isolated_env, torch_loaded):
    pytester.makepyfile(test_exit=EXIT_PROBE.format(torch_loaded=torch_loaded))
    result = pytester.runpytest_subprocess("-p", "peft_edges", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "atexit handlers still run" in out
    assert ("cycle finalized at exit" in out) is not torch_loaded
