"""The test function that runs every case: parametrized by the plugin with one case per test id.

The plugin adds this file to the collection when ``--peft-edges`` or case paths are given.
"""

from __future__ import annotations

from typing import Any


def test_peft_edge_case(peft_edges_case: Any, peft_edges_judge: Any) -> None:
    """Run one YAML case and act on its verdict (pass, strict xfail, or fail with the reason)."""
    peft_edges_judge(peft_edges_case)
