"""gc_freeze: the collector skips the imported libraries only while a case runs, and is as the user left
it (nothing frozen) outside cases."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_heavy_imports_collect_nothing_and_freeze_only_inside_a_case():
    out = run_python(
        "import gc\n"
        "from pytest_peft_edges.gc_freeze import case_phase, heavy_imports\n"
        "with heavy_imports():\n"
        "    print('outside: collector', gc.isenabled())\n"
        "    import json\n"
        "print('outside after: collector', gc.isenabled(), 'frozen', gc.get_freeze_count())\n"
        "with case_phase():\n"
        "    print('case: frozen', gc.get_freeze_count() > 0)\n"
        "    with heavy_imports():\n"
        "        print('case imports: collector', gc.isenabled())\n"
        "        import csv\n"
        "    print('case after imports: collector', gc.isenabled(), 'frozen', gc.get_freeze_count() > 0)\n"
        "print('after case: collector', gc.isenabled(), 'frozen', gc.get_freeze_count())\n"
        "gc.disable()\n"
        "with case_phase():\n"
        "    pass\n"
        "print('user disabled: collector', gc.isenabled())\n"
    )
    assert out.splitlines() == [
        "outside: collector False", "outside after: collector True frozen 0",
        "case: frozen True", "case imports: collector False", "case after imports: collector True frozen True",
        "after case: collector True frozen 0", "user disabled: collector False"]


def test_objects_the_user_froze_stay_frozen_and_nothing_else_is():
    out = run_python(
        "import gc\n"
        "from pytest_peft_edges.gc_freeze import case_phase, heavy_imports\n"
        "gc.freeze()\n"
        "mine = gc.get_freeze_count()\n"
        "with case_phase():\n"
        "    junk = [[] for _ in range(1000)]\n"
        "    with heavy_imports():\n"
        "        import json\n"
        "    print(gc.get_freeze_count() == mine)\n"
        "print(gc.get_freeze_count() == mine)\n"
    )
    assert out.split() == ["True", "True"]


def test_the_frozen_objects_are_counted_once_when_the_user_froze_some():
    """Counting frozen objects walks them all: with the user's objects frozen, cases must not count
    them each time (it doubled a catalogue run). Nothing is frozen or unfrozen here meanwhile."""
    out = run_python(
        "import gc\n"
        "from pytest_peft_edges.gc_freeze import case_phase\n"
        "gc.freeze()\n"
        "mine = gc.get_freeze_count()\n"
        "calls = []\n"
        "count = gc.get_freeze_count\n"
        "gc.get_freeze_count = lambda: calls.append(1) or count()\n"
        "for _ in range(5):\n"
        "    with case_phase():\n"
        "        pass\n"
        "print(len(calls), count() == mine)\n"
    )
    assert out.split() == ["1", "True"]


EXIT_PROBE = """
import sys, types
from pytest_peft_edges.gc_freeze import case_phase

class Cycle:
    def __del__(self):
        print("cycle finalized at exit", flush=True)

if {case_ran}:
    with case_phase():
        sys.modules.setdefault("torch", types.ModuleType("torch"))  # stands in for a case importing torch
KEEP = Cycle()
KEEP.me = KEEP  # alive until the module is torn down at exit, then only the final collection frees it
import atexit
atexit.register(print, "atexit handlers still run", flush=True)
"""


@pytest.mark.parametrize("case_ran", [True, False])
def test_exit_skips_the_final_collection_only_after_a_case_loaded_torch(case_ran):
    out = run_python(EXIT_PROBE.format(case_ran=case_ran))
    assert "atexit handlers still run" in out
    assert ("cycle finalized at exit" in out) is not case_ran
