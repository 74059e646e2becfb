"""The steps a case may run: each renders the plain Python it stands for (its only definition).

A step function takes a :class:`~pytest_peft_edges.codegen.Render` and the YAML fields as keyword
arguments, and writes lines with ``r(...)``: YAML values through ``r.lit``/``r.kwargs`` (literals), object
names through ``r.ref``/``r.out`` (identifiers), helpers through ``r.helper`` (:mod:`.helpers`). The
engine runs those lines; ``peft-edges export`` prints them. torch, transformers and peft are the modules
``torch``, ``transformers`` and ``peft`` in that code; ``WORKDIR`` is the case's private directory.
"""

from __future__ import annotations

from . import adapters, boundary, models, observe, saving  # noqa: F401  (each module registers its steps)
from ._common import LOAD_RESULT

__all__ = ["LOAD_RESULT", "adapters", "boundary", "models", "observe", "saving"]
