"""Keep Python's cyclic garbage collector off the millions of objects torch, transformers and peft
create at import — only while YAML cases run.

Every full (generation 2) collection walks every tracked object. Importing torch, transformers and peft
leaves millions of them alive, so each full collection during a catalogue run costs 0.1-0.2 s and
frees nothing (``benchmarks/run.py`` measures it). So, while a case runs (:func:`case_phase`):

- objects alive when it starts are moved to the permanent generation (``gc.freeze()``), which
  collections skip, and :func:`heavy_imports` imports torch, transformers and peft with the collector
  off, then freezes what they left alive;
- when the case ends, ``gc.unfreeze()`` gives every frozen object back to the collector, and the
  collector is as the user left it (enabled or not).

The user's own tests, before, between and after the cases, run with nothing frozen: a reference cycle
they drop is reclaimed as without the plugin. If the user froze objects themselves
(``gc.get_freeze_count() > 0`` when a case starts), nothing is frozen or unfrozen here, and the count is
not taken again for the rest of the process: counting walks every frozen object (40 ms a case with 340k
of them, which made a catalogue run take twice as long). Once a case has imported torch,
an exit handler freezes again at interpreter exit, after the session, to skip the final full collection
(~0.6 s); finalizers of objects still alive in a reference cycle at exit then do not run (Python never
promises them at exit, see ``object.__del__``). A session that runs no case registers nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import sys
from collections.abc import Iterator

_STATE = {"phase": 0, "owner": False, "exit": False, "user_froze": False}


@contextlib.contextmanager
def case_phase() -> Iterator[None]:
    """Around one case: freeze what is alive now (unless the user froze objects), unfreeze after."""
    outer = _STATE["phase"] == 0
    if outer and not _STATE["user_froze"] and gc.get_freeze_count() > 0:
        _STATE["user_froze"] = True
    owner = outer and not _STATE["user_froze"]
    if outer:
        _STATE["owner"] = owner
    _STATE["phase"] += 1
    if owner:
        gc.freeze()
    try:
        yield
    finally:
        _STATE["phase"] -= 1
        if outer:
            if _STATE["owner"]:
                gc.unfreeze()
            _STATE["owner"] = False
            if "torch" in sys.modules and not _STATE["exit"]:
                _STATE["exit"] = True
                atexit.register(_freeze_at_exit)


@contextlib.contextmanager
def heavy_imports() -> Iterator[None]:
    """Import torch, transformers and peft inside: no collection meanwhile; inside a case, what they
    left alive is frozen until the case ends. The collector's previous state is restored."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        if _STATE["phase"] and _STATE["owner"]:
            gc.freeze()


def _freeze_at_exit() -> None:
    if "torch" in sys.modules:
        gc.freeze()
