"""``set_order``: a case whose bug depends on the iteration order of a set of names runs in every order,
in one interpreter, whatever its PYTHONHASHSEED."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys

import pytest

from pytest_peft_edges import engine, helpers
from pytest_peft_edges.verdicts import Failure

NAMES = [["lin1", "lin10"], ["a", "ab", "abc"], ["w", "x", "y", "z"]]


def assert_every_order(names, renamings):
    assert [order for order, _ in renamings] == list(itertools.permutations(names))
    for order, renaming in renamings:
        prefix = renaming[names[0]][: -len(names[0])]
        assert all(renaming[name] == prefix + name for name in names), renaming
        # a set built from the renamed list iterates in exactly the promised order
        assert list(set(renaming[name] for name in names)) == [renaming[name] for name in order]


@pytest.mark.parametrize("names", NAMES, ids=lambda names: "-".join(names))
def test_every_order_shows_up_in_this_interpreter(names):
    assert_every_order(names, helpers.set_order_renamings(names))


def test_every_order_shows_up_under_other_hash_seeds():
    code = ("import json, sys; from pytest_peft_edges.helpers import set_order_renamings as r; "
            "print(json.dumps([r(n) for n in json.loads(sys.argv[1])]))")
    for seed in ("0", "1", "2", "12345"):
        out = subprocess.run([sys.executable, "-c", code, json.dumps(NAMES)], capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for names, renamings in zip(NAMES, json.loads(out)):
            orders = [tuple(order) for order, _ in renamings]
            assert orders == list(itertools.permutations(names)), seed
            # the check of the iteration order itself needs that interpreter's hashes: re-run it there
            check = ("import json, sys; r = json.loads(sys.argv[1]); n = json.loads(sys.argv[2]); "
                     "assert all(list(set(m[x] for x in n)) == [m[x] for x in o] for o, m in r)")
            subprocess.run([sys.executable, "-c", check, json.dumps(renamings), json.dumps(names)], check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed})


def test_the_first_failing_order_is_reported_with_its_label():
    names = ["lin1", "lin10"]
    runs = []

    def run(renaming, index):
        runs.append(index)
        iterated = list(set(renaming[name] for name in names))
        return [Failure("x", "check", ("CheckFailed",), "boom")] if iterated == [renaming["lin10"], renaming["lin1"]] else []

    failures = engine.failures_per_set_order(names, run)
    assert runs == [0, 1]
    assert len(failures) == 1
    assert re.fullmatch(r"\[set order lin10, lin1( \(as v\d+_lin10, v\d+_lin1\))?\] boom", failures[0].message)


def test_no_failure_in_any_order_runs_every_order():
    runs = []
    assert engine.failures_per_set_order(["a", "ab", "abc"], lambda renaming, index: runs.append(index) or []) == []
    assert runs == list(range(6))


def test_renamed_replaces_whole_strings_only():
    value = {"layers": ["lin0", "lin1", "lin10"], "pattern": "lin1", "nested": {"lin1": ("lin1", 1)}, "note": "lin1x"}
    assert helpers.renamed(value, {"lin1": "v1_lin1"}) == {
        "layers": ["lin0", "v1_lin1", "lin10"], "pattern": "v1_lin1", "nested": {"v1_lin1": ("v1_lin1", 1)},
        "note": "lin1x"}


SET_ORDER_CASE = """
id: set-order-labels
title: every key of a lin10 layer is renamed consistently, and the failure names the order
set_order: [lin1, lin10]
model: {architecture: mlp, config: {layers: [lin0, lin1, lin10], hidden: 4}}
steps:
  - {op: get_peft_model, config: {r: 2, target_modules: [lin0], modules_to_save: [lin1, lin10]}}
  - {op: snapshot, kind: keys, pattern: 'lin10\\.modules_to_save', as: keys}
expect:
  - {id: no-lin10-copy, check: keys, of: keys, pattern: 'lin10', expect: none}
"""


def test_a_set_order_case_runs_in_process_and_labels_its_failure(pytester, write_case, monkeypatch, isolated_env):
    pytest.importorskip("peft")
    write_case("set-order.yaml", SET_ORDER_CASE)
    # under this seed a set of "lin1", "lin10" iterates lin10 first: the first order needs the renaming
    monkeypatch.setenv("PYTHONHASHSEED", "1")
    result = pytester.runpytest_subprocess("-p", "peft_edges", "--peft-edges-cases", "cases",
                                           "--peft-edges-report", "r.json")
    result.assert_outcomes(failed=1)
    (entry,) = json.loads((pytester.path / "r.json").read_text())["cases"]
    assert entry["verdict"] == "regressed"
    # the first order (lin1 before lin10) failed; the keys carry the same prefix as the label
    label = re.search(r"check failed: \[set order lin1, lin10(?: \(as (v\d+_)lin1, \1lin10\))?\] ", entry["message"])
    assert label, entry["message"]
    prefix = label.group(1)
    assert prefix, "PYTHONHASHSEED=1 iterates lin10 first, so lin1 first needs renamed names"
    assert f"base_model.model.{prefix}lin10.modules_to_save.default.weight" in entry["message"]
    assert "set-order-0" not in " ".join(os.listdir(pytester.path))  # order dirs live in the case's tmp dir
