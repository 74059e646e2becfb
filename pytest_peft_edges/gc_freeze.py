"""Keep Python's cyclic garbage collector off the millions of objects torch, transformers and peft create
at import.

Every full (generation 2) collection walks every tracked object. Importing torch, transformers and peft
leaves millions of them, all alive until exit, so each full collection during a catalogue run costs
0.1-0.2 s and the last ones at interpreter exit cost ~0.6 s more, none of it freeing anything
(``benchmarks/run.py`` measures both). The full collections during the imports themselves (~0.4 s) find
nothing either: the imported objects all stay alive. So:

- :func:`heavy_imports` wraps the catalogue's import of torch, transformers and peft: no collection
  while they import, then ``gc.freeze()`` moves every object alive to the permanent generation, which
  later collections skip;
- :func:`register_freeze_at_exit` freezes again at exit (an ``atexit`` handler) once torch is loaded.

What is given up: an object alive at a freeze that later becomes unreachable only through a reference
cycle is not reclaimed before exit, and finalizers of such objects alive at exit do not run (Python
never guarantees them at exit, see ``object.__del__``). ``atexit`` handlers all still run.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import sys
from collections.abc import Iterator

_DONE: set[str] = set()


@contextlib.contextmanager
def heavy_imports() -> Iterator[None]:
    """Import torch, transformers and peft inside: no collection meanwhile, then freeze (the first time).

    The collector's previous state (enabled or disabled by the user) is restored.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        if "imports" not in _DONE:
            _DONE.add("imports")
            gc.freeze()


def register_freeze_at_exit() -> None:
    """Register the exit handler once per process (configure may run several times under pytester)."""
    if "exit" not in _DONE:
        _DONE.add("exit")
        atexit.register(_freeze_when_torch_loaded)


def _freeze_when_torch_loaded() -> None:
    if "torch" in sys.modules:
        gc.freeze()
